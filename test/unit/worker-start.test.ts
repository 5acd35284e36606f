/**
 * What a worker process loads before it connects, which is most of a
 * restart without a standby: the package's entry leaves out what only the
 * coordinator, the CLI or an opted-in feature uses, and the word count's
 * worker bundles (package.json's `bundle:worker`, which `make build` runs)
 * into one file that runs on its own.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runTool } from '../helpers/run-tool.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Imports what the word count's worker imports, and prints the npm packages loaded by then, by name. */
const PROBE = `
import { createRequire } from 'node:module';
await import('./src/index.ts');
await import('./examples/wordcount/tasks.ts');
const names = new Set();
for (const file of Object.keys(createRequire(import.meta.url).cache)) {
  const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(file);
  if (m) names.add(m[1]);
}
console.log(JSON.stringify([...names].sort()));
`;

test("importing the package's entry loads no package that only the coordinator, the CLI or metrics use", async (t) => {
  const run = await runTool('node', ['--import', 'tsx', '--input-type=module', '-e', PROBE], { cwd: REPO_ROOT });
  t.true(run.ok, run.out);
  const loaded = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '[]') as string[];
  t.log(`loaded: ${loaded.join(', ')}`);
  // What a worker needs: the probe sees CommonJS packages loaded from ES modules.
  for (const name of ['@grpc/grpc-js', '@nats-io/nats-core', 'pino', 'protobufjs']) {
    t.true(loaded.includes(name), `${name} is loaded`);
  }
  // Metrics (opt-in), the object store backend and the coordinator's pieces, etcd, the CLI.
  for (const name of ['prom-client', '@nats-io/obj', 'etcd3', 'commander', '@grpc/reflection', 'grpc-health-check']) {
    t.false(loaded.includes(name), `${name} is not loaded`);
  }
});

test('the word count worker bundles into one file that runs without dist/ or node_modules beside it', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const script = pkg.scripts['bundle:worker'] ?? '';
  t.regex(
    script,
    /^esbuild examples\/wordcount\/worker\.ts .*--outfile=dist\/examples\/wordcount\/worker\.bundle\.js /,
  );
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-bundle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'worker.bundle.js');
  // package.json's command with another output file; npx finds esbuild in node_modules/.bin.
  const command = `npx --no-install ${script.replace(/--outfile=\S+/, `--outfile=${outfile}`)}`;
  const built = await runTool('sh', ['-c', command], { cwd: REPO_ROOT });
  t.true(built.ok, built.out);
  const text = await readFile(outfile, 'utf8');
  // Imports left in the file: Node's built-in modules, and lz4-napi, loaded on first use by createRequire.
  const imported = [...text.matchAll(/^import .* from ['"]([^'"]+)['"];?$/gm)].map((m) => m[1]);
  t.deepEqual(
    imported.filter((s) => !s?.startsWith('node:')),
    [],
  );
  t.true(text.includes('"lz4-napi"'), 'lz4-napi is required at run time, not bundled');
  // Run from the temporary folder: all it needs is in the file. Without flags it asks for them.
  const ran = await runTool('node', [outfile], { cwd: dir });
  t.false(ran.ok);
  t.regex(ran.out, /worker: usage: worker\.ts --coordinator ADDR/);
});
