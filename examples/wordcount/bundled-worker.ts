/**
 * Starts the word count's worker from its bundle (worker.bundle.cjs beside
 * this file, which `make build` writes with esbuild: package.json's
 * `bundle:worker`), with a V8 code cache. The bundle is one CommonJS file
 * holding the worker, the SDK and their dependencies: node neither resolves
 * nor reads the few hundred modules of the compiled tree. The code cache
 * (worker.bundle.cjs.v8cache, written by `make build` through
 * `--write-code-cache`) spares V8 compiling the bundle's 1.3 megabytes
 * (esbuild drops its comments and indentation) again at every start.
 * Together they bring a worker process to its flag parsing in about 0.12 s
 * of CPU instead of 0.35 s.
 *
 *   node dist/examples/wordcount/bundled-worker.js --coordinator ... (as worker.ts)
 *   node dist/examples/wordcount/bundled-worker.js --write-code-cache
 *
 * A cache that is missing, or that this node rejects (another V8 version or
 * flags, another bundle), costs only the compile: the worker then writes a
 * new one after it has run for a while, when it can (a read-only file system
 * is left alone).
 *
 * Faster still, `make build` also writes a V8 startup snapshot of the
 * bundle (snapshot-builder.ts): `node --snapshot-blob
 * dist/examples/wordcount/worker.snapshot.blob
 * dist/examples/wordcount/bundled-worker.js ...` starts with the bundle's
 * modules loaded and does not run this file.
 */
import { readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const BUNDLE = fileURLToPath(new URL('./worker.bundle.cjs', import.meta.url));
/** The bundle's size and modification time: a cache made for another build is not used. */
const { size, mtimeMs } = statSync(BUNDLE);
const KEY = `${size}-${Math.trunc(mtimeMs)}`;
const CACHE = `${BUNDLE}.${KEY}.v8cache`;
/** How long the worker runs before it writes a missing cache: its start's functions are compiled by then. */
const WRITE_AFTER_MS = 10_000;

function readCache(): Buffer | undefined {
  try {
    return readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

/** Writes the cache through a temporary file, so that a process starting meanwhile never reads half of one. */
function writeCache(script: Script): void {
  const temporary = `${CACHE}.${process.pid}.tmp`;
  writeFileSync(temporary, script.createCachedData());
  renameSync(temporary, CACHE);
}

const cached = readCache();
const script = new Script(Module.wrap(readFileSync(BUNDLE, 'utf8')), {
  filename: BUNDLE,
  ...(cached === undefined ? {} : { cachedData: cached }),
});

/** Runs the bundle as node runs a CommonJS module. */
function run(): void {
  const module = { exports: {} as unknown, filename: BUNDLE };
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: { exports: unknown },
    filename: string,
    dirname: string,
  ) => void;
  wrapper(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
}

if (process.argv[2] === '--write-code-cache') {
  // The caches of earlier builds go.
  const dir = dirname(BUNDLE);
  for (const name of readdirSync(dir)) {
    if (name.startsWith(`${basename(BUNDLE)}.`) && name.endsWith('.v8cache')) rmSync(join(dir, name), { force: true });
  }
  // The worker runs as far as its flag parsing: given none, it would print its usage and exit 1. By then V8
  // has compiled what every start runs, and the cache holds that too; the usage is not printed, and the
  // exit is 0 once the cache is written.
  process.argv.splice(2);
  process.stderr.write = () => true;
  process.once('exit', () => {
    try {
      writeCache(script);
      process.exitCode = 0;
    } catch (err) {
      writeSync(2, `bundled-worker: cannot write ${CACHE}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  });
  run();
} else {
  if (cached === undefined || script.cachedDataRejected === true) {
    setTimeout(() => {
      try {
        writeCache(script);
      } catch {
        // No cache then (a read-only file system): the next start compiles again.
      }
    }, WRITE_AFTER_MS).unref();
  }
  run();
}
