/**
 * Processes of the benchmarks that run as a deployment runs them: the
 * compiled JavaScript in dist/ (`make build`) under plain `node`, not
 * TypeScript under tsx, whose loader hooks add about 0.3 s to every
 * process start (about 0.6 s instead of 0.3 s for the word count worker,
 * measured on the 2-core bench machine) and would dominate a restart.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(REPO, 'dist');

/** `ckpt` as package.json's bin names it. */
export const COMPILED_CLI = join(DIST, 'src', 'cli', 'main.js');
/**
 * The word count's worker process (examples/wordcount/worker.ts) bundled
 * into one file by `make build` (package.json's `bundle:worker`, esbuild),
 * started with a V8 code cache by examples/wordcount/bundled-worker.ts, as
 * the deployment's manifests run it: plain `node` neither resolves nor
 * reads the few hundred modules of dist/ and node_modules that the worker
 * otherwise loads, nor compiles them, which was most of its start (on the
 * 2-core bench machine, about 0.14 s of CPU instead of 0.46 s to its flag
 * parsing).
 */
export const COMPILED_WORDCOUNT_WORKER = join(DIST, 'examples', 'wordcount', 'bundled-worker.js');
/** The bundle that `COMPILED_WORDCOUNT_WORKER` runs. */
const WORKER_BUNDLE = join('dist', 'examples', 'wordcount', 'worker.bundle.cjs');
/**
 * The V8 startup snapshot of that bundle (package.json's `snapshot:worker`,
 * examples/wordcount/snapshot-builder.ts): `node --snapshot-blob
 * COMPILED_WORKER_SNAPSHOT COMPILED_WORDCOUNT_WORKER ...` starts the worker
 * with its modules loaded.
 */
export const COMPILED_WORKER_SNAPSHOT = join(DIST, 'examples', 'wordcount', 'worker.snapshot.blob');
/** The word count on nats.js alone, the data plane's baseline (bench/lib/bare-wordcount.ts). */
export const COMPILED_BARE_WORDCOUNT = join(DIST, 'bench', 'lib', 'bare-wordcount.js');

/** The sources whose compiled output the processes above run: folders, and single files. */
const SOURCE_DIRS = ['src', 'examples'];
const SOURCE_FILES = ['bench/lib/bare-wordcount.ts'];
/** Stale or missing outputs named in the error; the rest are counted. */
const NAMED_STALE = 5;

/**
 * `ManagedChild`'s node arguments for the scripts above: no tsx; with
 * CKPT_BENCH_CPU_PROF_DIR set, a CPU profile of each process into it.
 */
export const COMPILED_NODE_ARGS: readonly string[] = process.env.CKPT_BENCH_CPU_PROF_DIR
  ? ['--cpu-prof', '--cpu-prof-dir', process.env.CKPT_BENCH_CPU_PROF_DIR]
  : [];

/**
 * Resolves when every `.ts` of src/ and examples/, and the bare word
 * count, has its `.js` in dist/,
 * written after it (tsc rewrites every output on each build), the
 * worker's bundle is newer than all of them, and its snapshot newer than
 * the bundle; rejects
 * with an error naming what is missing or stale and saying to run
 * `make build` otherwise.
 */
export async function requireCompiled(): Promise<void> {
  const sources = [...SOURCE_FILES];
  for (const dir of SOURCE_DIRS) {
    const names = await readdir(join(REPO, dir), { recursive: true });
    sources.push(...names.filter((n) => n.endsWith('.ts') && !n.endsWith('.d.ts')).map((n) => join(dir, n)));
  }
  const stale: string[] = [];
  let newest = 0;
  for (const source of sources) {
    const output = join(DIST, source.replace(/\.ts$/, '.js'));
    const [sourceStat, outputStat] = await Promise.all([stat(join(REPO, source)), stat(output).catch(() => undefined)]);
    if (outputStat === undefined || outputStat.mtimeMs < sourceStat.mtimeMs) stale.push(relative(REPO, output));
    newest = Math.max(newest, sourceStat.mtimeMs);
  }
  // The worker's bundle holds code of src/ and examples/: it must be newer than all of them.
  const bundle = await stat(join(REPO, WORKER_BUNDLE)).catch(() => undefined);
  if (bundle === undefined || bundle.mtimeMs < newest) stale.push(WORKER_BUNDLE);
  // The snapshot holds the bundle: it must be newer.
  const snapshot = await stat(COMPILED_WORKER_SNAPSHOT).catch(() => undefined);
  if (snapshot === undefined || snapshot.mtimeMs < (bundle?.mtimeMs ?? Infinity)) {
    stale.push(relative(REPO, COMPILED_WORKER_SNAPSHOT));
  }
  if (stale.length === 0) return;
  const more = stale.length > NAMED_STALE ? ` and ${stale.length - NAMED_STALE} more` : '';
  throw new Error(
    `the benchmark runs the compiled JavaScript in dist/, which is missing or older than its sources ` +
      `(${stale.slice(0, NAMED_STALE).join(', ')}${more}): run \`make build\` first`,
  );
}
