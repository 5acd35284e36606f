/**
 * The word count worker's V8 startup snapshot (package.json's
 * `snapshot:worker`, examples/wordcount/snapshot-builder.ts): it builds
 * from the worker's bundle, and a process started from it runs the worker's
 * `main` with its own command line, as the bundle does.
 */
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runTool } from '../helpers/run-tool.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Scripts {
  'bundle:worker'?: string;
  'snapshot:worker'?: string;
}

/** package.json's scripts of the worker's bundle and snapshot. */
async function scripts(): Promise<Scripts> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Scripts };
  return pkg.scripts;
}

/** `command` with dist/examples/wordcount/ as `dir`, and esbuild from node_modules. */
function into(command: string, dir: string): string {
  return command
    .replaceAll('dist/examples/wordcount/', `${dir}/`)
    .replace(/(^|&& )esbuild /g, `$1${join(REPO_ROOT, 'node_modules/.bin/esbuild')} `);
}

test('make build writes the snapshot after the bundle and its code cache', async (t) => {
  const { 'bundle:worker': bundle = '', 'snapshot:worker': snapshot = '' } = await scripts();
  t.true(bundle.endsWith(' && npm run --silent snapshot:worker'), bundle);
  t.regex(
    snapshot,
    /^esbuild examples\/wordcount\/snapshot-builder\.ts .*--outfile=dist\/examples\/wordcount\/snapshot-builder\.cjs /,
  );
  t.regex(
    snapshot,
    / && node --no-warnings --snapshot-blob dist\/examples\/wordcount\/worker\.snapshot\.blob --build-snapshot dist\/examples\/wordcount\/snapshot-builder\.cjs$/,
  );
});

test('a worker process started from the snapshot runs the worker with its own command line', async (t) => {
  const { 'bundle:worker': bundleScript = '', 'snapshot:worker': snapshotScript = '' } = await scripts();
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-snapshot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // The bundle alone (its first command: no code cache, which the snapshot does not read), then the snapshot.
  const [bundle = ''] = bundleScript.split(' && ');
  const built = await runTool('sh', ['-c', `${into(bundle, dir)} && ${into(snapshotScript, dir)}`], {
    cwd: REPO_ROOT,
  });
  t.true(built.ok, built.out);
  const blob = join(dir, 'worker.snapshot.blob');
  t.true((await stat(blob)).size > 1_000_000);
  // Node does not run the script named after the snapshot (it fills process.argv[1]): a file that is not there will do.
  const script = join(dir, 'not-run.js');
  const usage = await runTool('node', ['--snapshot-blob', blob, script], { cwd: dir });
  t.false(usage.ok);
  t.regex(usage.out, /worker: usage: worker\.ts --coordinator ADDR/);
  const missing = await runTool('node', ['--snapshot-blob', blob, script, '--job'], { cwd: dir });
  t.false(missing.ok);
  t.regex(missing.out, /worker: Option '--job <value>' argument missing/);
  // The snapshot holds the bundle's modules: it runs without the bundle beside it.
  await copyFile(blob, join(dir, 'copy.blob'));
  await rm(join(dir, 'worker.bundle.cjs'));
  const alone = await runTool('node', ['--snapshot-blob', join(dir, 'copy.blob'), script], { cwd: dir });
  t.regex(alone.out, /worker: usage: worker\.ts --coordinator ADDR/);
});
