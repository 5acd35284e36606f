/**
 * The package's two entries: the root (`src/index.ts`, what users import)
 * and `ckpt/internal` (`src/internal.ts`, the shared building blocks).
 * The root's values are pinned name by name, so that neither a new export
 * nor a re-exported barrel widens the public surface unnoticed; the types
 * are pinned by the type-only imports below, which `tsc` checks.
 */
import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as root from '../../src/index.js';
import * as internal from '../../src/internal.js';
import * as sdkBarrel from '../../src/sdk/index.js';
import * as clientBarrel from '../../src/client/index.js';
import type {
  AnyTask,
  BackoffOptions,
  CallOptions,
  CheckpointCallEvent,
  CheckpointSummary__Output,
  ClientOptions,
  ConfirmedBeliefs,
  DataRecord,
  Emissions,
  ErrorReason,
  JetStreamSinkOptions,
  JetStreamSourceOptions,
  JobInfo__Output,
  JobSpec,
  Logger,
  Manifest__Output,
  RemoteErrorInfo,
  RestoredEvent,
  SnapshotKey,
  SnapshotOwner,
  SourceTask,
  StateBackend,
  StateBackendConfig,
  SubmitJobRequest,
  Task,
  TaskContext,
  WatchCheckpointsResponse__Output,
  WorkerEventMap,
  WorkerMetricsOptions,
  WorkerOptions,
} from '../../src/index.js';
// @ts-expect-error the worker's resolved options are internal
import type { WorkerConfig as _WorkerConfig } from '../../src/index.js';
// @ts-expect-error the session stream of the worker protocol is internal
import type { AttachStream as _AttachStream } from '../../src/index.js';
// @ts-expect-error the worker protocol's messages are internal
import type { AttachRequest as _AttachRequest } from '../../src/index.js';
// @ts-expect-error the etcd records are internal
import type { StoredJob as _StoredJob } from '../../src/index.js';
import type { AttachRequest, AttachStream, StoredJob, WorkerConfig } from '../../src/internal.js';

/** Types users write against; a missing one fails `tsc`. */
type _PublicTypes = [
  AnyTask,
  BackoffOptions,
  CallOptions,
  CheckpointCallEvent,
  CheckpointSummary__Output,
  ClientOptions,
  ConfirmedBeliefs,
  DataRecord,
  Emissions,
  ErrorReason,
  JetStreamSinkOptions,
  JetStreamSourceOptions,
  JobInfo__Output,
  JobSpec,
  Logger,
  Manifest__Output,
  RemoteErrorInfo,
  RestoredEvent,
  SnapshotKey,
  SnapshotOwner,
  SourceTask,
  StateBackend,
  StateBackendConfig,
  SubmitJobRequest,
  Task,
  TaskContext,
  WatchCheckpointsResponse__Output,
  WorkerEventMap,
  WorkerMetricsOptions,
  WorkerOptions,
];

/** Internal types `ckpt/internal` keeps reachable. */
type _InternalTypes = [AttachRequest, AttachStream, StoredJob, WorkerConfig];

/** Every value the package root exports. Add a name only when users need it. */
const PUBLIC_VALUES = [
  // the worker, its options' defaults, its events
  'Worker',
  'createWorker',
  'warmUpCodecs',
  'DEFAULT_ACK_BATCH_MS',
  'DEFAULT_ACK_DEADLINE_MS',
  'DEFAULT_ACK_RETRY_TIMEOUT_MS',
  'DEFAULT_ATTACH_TIMEOUT_MS',
  'DEFAULT_BACKOFF',
  'DEFAULT_MAX_ACK_REQUEST_BYTES',
  'DEFAULT_MAX_QUEUED_SOURCE_MESSAGES',
  'DEFAULT_START_TIMEOUT_MS',
  'DEFAULT_WAIT_MS',
  'waitForEvent',
  'partitionOf',
  'CheckpointDeclinedError',
  // connectors
  'jetStreamSource',
  'jetStreamSink',
  'DEFAULT_SINK_DUPLICATE_WINDOW_MS',
  'DEFAULT_SINK_MAX_IN_FLIGHT',
  'DEFAULT_SINK_PUBLISH_TIMEOUT_MS',
  // state
  'createStateBackend',
  'createLocalDirectoryBackend',
  'createObjectStoreBackend',
  'DEFAULT_DIRECTORY_SLICE_BYTES',
  'DEFAULT_BUCKET',
  'DEFAULT_CHUNK_BYTES',
  'DEFAULT_CHUNK_TIMEOUT_MS',
  'DEFAULT_REPLICAS',
  'sha256Checksum',
  'verifyChecksum',
  'KeyedState',
  // logging
  'createLogger',
  'silentLogger',
  // clients and errors
  'createCoordinatorClient',
  'CoordinatorClient',
  'createQueryClient',
  'QueryClient',
  'DEFAULT_CLIENT_MAX_MESSAGE_BYTES',
  'DEFAULT_DEADLINE_MS',
  'DEFAULT_LEADER_RETRY',
  'errorInfo',
  'errorReason',
  'isCancelled',
  'toCkptError',
  'CkptError',
  'hasReason',
  // the contract's enums
  'AbortReason',
  'CheckpointMode',
  'CheckpointState',
  'JobAttempt',
  'JobCheckpointing',
  'JobState',
  'SnapshotType',
];

/** Building blocks that must stay out of the root and in `ckpt/internal`. */
const INTERNAL_VALUES = [
  // bus codecs, subjects and headers
  'controlMessageCodecs',
  'decodeControl',
  'ControlIntake',
  'TermGate',
  'edgeSubject',
  'KEY_HEADER',
  'codec',
  'loadPackageDefinition',
  // session request plumbing and leader routing of the clients
  'SessionRequests',
  'unary',
  'ckptGrpc',
  'parseAddresses',
  'bearerTokenInterceptor',
  'FINAL_SESSION_REASONS',
  'REASON_METADATA',
  // the SDK's machinery
  'InputAligner',
  'Router',
  'SinkStaging',
  'encodeUnalignedSnapshot',
  'encodeKeyedState',
  'resolveWorkerOptions',
  'resolveBackoff',
  'jobGraph',
  // running a coordinator in-process
  'runCoordinator',
  'resolveConfig',
  'startLocalServers',
  'WireErrorReason',
];

const sorted = (names: Iterable<string>): string[] => [...names].sort();

test('the root exports exactly the values users need', (t) => {
  t.deepEqual(
    sorted(Object.keys(root)),
    sorted(PUBLIC_VALUES),
    'the public surface changed: list a new name in PUBLIC_VALUES only if users need it, else export it from src/internal.ts',
  );
});

test('internal building blocks are exported from ckpt/internal and not from the root', (t) => {
  for (const name of INTERNAL_VALUES) {
    t.false(name in root, `${name} is internal but the root exports it`);
    t.true(name in internal, `${name} is missing from src/internal.ts`);
  }
});

test('ckpt/internal keeps everything the root and the SDK and client barrels export', (t) => {
  const missing = [root, sdkBarrel, clientBarrel].flatMap((mod) => Object.keys(mod).filter((n) => !(n in internal)));
  t.deepEqual(missing, []);
});

test('what the README imports from the package is exported by the entry it names', async (t) => {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const imports = entryImports(readme, /from '(ckpt(?:\/internal)?)'/);
  t.true(imports.length > 0, 'the README shows an import from the package');
  for (const { entry, name } of imports) {
    t.true(name in (entry === 'ckpt' ? root : internal), `README imports ${name} from ${entry}`);
  }
});

test('the examples import the package through its two entries only', async (t) => {
  const dir = new URL('../../examples/', import.meta.url).pathname;
  const files = (await readdir(dir, { recursive: true })).filter((f) => f.endsWith('.ts'));
  t.true(files.length > 0);
  for (const file of files) {
    const source = await readFile(join(dir, file), 'utf8');
    for (const [, path] of source.matchAll(/from '((?:\.\.\/)+src\/[^']+)'/g)) {
      t.regex(path ?? '', /\/src\/(index|internal)\.js$/, `${file} imports ${path}`);
    }
  }
});

/** The value names of every `import { … } from '<entry>'` in `text` whose entry matches `from`. */
function entryImports(text: string, from: RegExp): { entry: string; name: string }[] {
  const pattern = new RegExp(`import \\{([^}]*)\\} ${from.source}`, 'g');
  return [...text.matchAll(pattern)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && !s.startsWith('type '))
      .map((name) => ({ entry: m[2] ?? '', name })),
  );
}
