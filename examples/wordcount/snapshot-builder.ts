/**
 * Builds the word count worker's V8 startup snapshot: loads the worker's
 * bundle (worker.bundle.cjs beside this file) and leaves the heap, with
 * every module of the bundle evaluated, to node, which writes it as the
 * snapshot. A process started from it skips reading, compiling and
 * evaluating the bundle and runs the worker's `main` at once (worker.ts
 * registers it when it sees a snapshot being built).
 *
 *   node --snapshot-blob worker.snapshot.blob --build-snapshot snapshot-builder.cjs
 *   node --snapshot-blob worker.snapshot.blob bundled-worker.js --coordinator ... (as worker.ts)
 *
 * (package.json's `bundle:worker` writes this file as snapshot-builder.cjs
 * with esbuild and runs it; the script named after the snapshot is not run,
 * it only fills `process.argv[1]`.)
 *
 * Node 20 cannot keep the native state of `node:http`, `node:http2` and
 * `node:tls` in a snapshot (the build fails on their bindings' handles:
 * the HTTP parser, nghttp2's buffers, the JS stream socket), and
 * `@grpc/grpc-js` and nats.js load them as their modules load. The bundle
 * therefore gets stand-ins for them, and for `https`, which load the real
 * module on first use, in the process started from the snapshot (so that
 * the gRPC connect of a restart pays for loading `http2`, which the bundle
 * otherwise pays as it loads); what the bundle reads of them while it
 * loads, `http2.constants`, the stand-in holds as this node's real values
 * (asked of a child process, since loading `http2` here is what must not
 * happen). Reading anything else of them while the snapshot is built fails
 * the build, naming it.
 *
 * The build runs with `--no-warnings`: node warns of every built-in
 * module loaded while a snapshot is built that it has not verified there,
 * which are `child_process` and `vm` (this file's own, done with before
 * the heap is written) and `worker_threads` (pino's transports, which a
 * worker logging to stderr does not start).
 *
 * What the bundle's modules read from the environment as they load
 * (`GRPC_VERBOSITY`, `GRPC_TRACE`) is read when the snapshot is built, not
 * when the worker starts; the worker's own settings (flags, CKPT_*
 * variables) are read when it starts, as without a snapshot.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startupSnapshot } from 'node:v8';
import { compileFunction } from 'node:vm';

const BUNDLE = join(__dirname, 'worker.bundle.cjs');

/** Built-in modules that cannot be loaded while the snapshot is built, and what the bundle reads of them as it loads. */
const DEFERRED: Record<string, Record<string, unknown>> = {
  http: {},
  https: {},
  http2: { constants: http2Constants() },
  tls: {},
};

/** `http2.constants` of this node, from a child process. */
function http2Constants(): Record<string, unknown> {
  const script = 'process.stdout.write(JSON.stringify(require("node:http2").constants))';
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as Record<string, unknown>;
}

/** A stand-in for built-in `name`: `eager` as it is, anything else from the real module, loaded on first use. */
function deferredModule(name: string, eager: Record<string, unknown>): object {
  let real: Record<string | symbol, unknown> | undefined;
  const load = (key: string | symbol): Record<string | symbol, unknown> => {
    if (startupSnapshot.isBuildingSnapshot()) {
      throw new Error(`the bundle reads ${name}.${String(key)} as it loads: add it to the stand-in's values`);
    }
    return (real ??= process.getBuiltinModule(`node:${name}`) as Record<string | symbol, unknown>);
  };
  return new Proxy(eager, {
    get: (target, key) => (Object.hasOwn(target, key) ? target[key as string] : load(key)[key]),
    has: (target, key) => Object.hasOwn(target, key) || key in load(key),
    ownKeys: () => Reflect.ownKeys(load('(keys)')),
    getOwnPropertyDescriptor: (target, key) =>
      Object.hasOwn(target, key)
        ? Reflect.getOwnPropertyDescriptor(target, key)
        : Reflect.getOwnPropertyDescriptor(load(key), key),
  });
}

const deferred = new Map<string, object>();
function bundleRequire(id: string): unknown {
  const name = id.replace(/^node:/, '');
  const eager = DEFERRED[name];
  if (eager === undefined) {
    // The bundle requires built-in modules only (lz4-napi, its one package outside, is required on first use).
    const builtin = process.getBuiltinModule(id) as unknown;
    if (builtin === undefined) throw new Error(`the bundle requires ${id} as it loads, which is not a built-in module`);
    return builtin;
  }
  let stand = deferred.get(name);
  if (stand === undefined) {
    stand = deferredModule(name, eager);
    deferred.set(name, stand);
  }
  return stand;
}

const source = readFileSync(BUNDLE, 'utf8');
// V8 keeps a source holding any character beyond Latin-1 at two bytes a character, and the snapshot holds the
// bundle's source: twice its share of the snapshot to read at every start (a megabyte and more). bundle:worker
// drops the comments (--minify-whitespace), where such characters come from; a build with one anyway says where.
const wide = /[\u0100-\uffff]/.exec(source);
if (wide !== null) {
  process.stderr.write(
    `snapshot-builder: warning: ${BUNDLE} holds ${JSON.stringify(wide[0])} at offset ${wide.index}, beyond Latin-1: ` +
      'V8 keeps its whole source at two bytes a character, in the snapshot too\n',
  );
}

// The bundle runs as node runs a CommonJS module, with the stand-ins behind its `require`.
const wrapper = compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], {
  filename: BUNDLE,
}) as (
  exports: unknown,
  require: (id: string) => unknown,
  module: { exports: unknown },
  filename: string,
  dirname: string,
) => void;
const module_ = { exports: {} };
wrapper(module_.exports, bundleRequire, module_, BUNDLE, __dirname);
