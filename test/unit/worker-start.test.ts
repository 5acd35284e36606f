/**
 * What a worker process loads before it connects, which is most of a
 * restart without a standby: the package's entry leaves out what only the
 * coordinator, the CLI or an opted-in feature uses, and the word count's
 * worker bundles (package.json's `bundle:worker`, which `make build` runs)
 * into one file that runs on its own.
 */
import { builtinModules } from 'node:module';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
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

test('the word count worker bundles into one file that runs, with its code cache, without dist/ or node_modules beside it', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const [bundle = '', cache = ''] = (pkg.scripts['bundle:worker'] ?? '').split(' && ');
  t.regex(
    bundle,
    /^esbuild examples\/wordcount\/worker\.ts .*--outfile=dist\/examples\/wordcount\/worker\.bundle\.cjs /,
  );
  t.is(cache, 'node dist/examples/wordcount/bundled-worker.js --write-code-cache');
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-bundle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // package.json's bundle with another output file, and the launcher beside it (an ES module, as tsc writes it).
  const esbuild = join(REPO_ROOT, 'node_modules/.bin/esbuild');
  const outfile = join(dir, 'worker.bundle.cjs');
  const built = await runTool(
    'sh',
    ['-c', bundle.replace(/^esbuild /, `${esbuild} `).replace(/--outfile=\S+/, `--outfile=${outfile}`)],
    {
      cwd: REPO_ROOT,
    },
  );
  t.true(built.ok, built.out);
  const launcher = join(dir, 'bundled-worker.mjs');
  const copied = await runTool(
    esbuild,
    [
      'examples/wordcount/bundled-worker.ts',
      '--platform=node',
      '--format=esm',
      `--outfile=${launcher}`,
      '--log-level=warning',
    ],
    { cwd: REPO_ROOT },
  );
  t.true(copied.ok, copied.out);

  const text = await readFile(outfile, 'utf8');
  // What the file requires: Node's built-in modules only; lz4-napi is required by name on first use.
  const required = [...text.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1] ?? '');
  t.deepEqual(
    required.filter((s) => !s.startsWith('node:') && !builtinModules.includes(s)),
    [],
  );
  t.true(text.includes('"lz4-napi"'), 'lz4-napi is required at run time, not bundled');
  // Latin-1 only: V8 keeps such a source at one byte a character, in the snapshot built from it too.
  t.is(/[\u0100-\uffff]/.exec(text)?.[0], undefined, 'the bundle holds a character beyond Latin-1');

  // The code cache: written quietly, with exit 0; the caches of earlier builds go.
  await writeFile(join(dir, 'worker.bundle.cjs.1-2.v8cache'), 'a cache of another build');
  const written = await runTool('node', [launcher, '--write-code-cache'], { cwd: dir });
  t.true(written.ok, written.out);
  t.is(written.out, '');
  const caches = (await readdir(dir)).filter((name) => name.endsWith('.v8cache'));
  t.is(caches.length, 1);
  t.regex(caches[0] ?? '', /^worker\.bundle\.cjs\.\d+-\d+\.v8cache$/);
  t.true((await stat(join(dir, caches[0] ?? ''))).size > 100_000);

  // Run from the temporary folder: without flags the worker asks for them; with a cache V8 rejects, alike.
  const ran = await runTool('node', [launcher], { cwd: dir });
  t.false(ran.ok);
  t.regex(ran.out, /worker: usage: worker\.ts --coordinator ADDR/);
  await writeFile(join(dir, caches[0] ?? ''), 'not a code cache');
  const rejected = await runTool('node', [launcher, '--job'], { cwd: dir });
  t.false(rejected.ok);
  t.regex(rejected.out, /worker: Option '--job <value>' argument missing/);
});
