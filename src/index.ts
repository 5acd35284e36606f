/**
 * The public entry of the `ckpt` package: what a user needs to run tasks
 * of a job (the worker SDK, its state backends and JetStream connectors),
 * to drive and query coordinators (the typed clients and their error
 * helpers), the contract's messages, and the error type.
 *
 * Everything here is chosen name by name, so that a building block added
 * to a module barrel does not become public by accident; the building
 * blocks the CLI, the server, the tests and the benchmarks share are
 * exported from `ckpt/internal` (`internal.ts`), with no promise of
 * stability. `test/unit/package-surface.test.ts` pins both lists.
 */

// The worker, its options and their defaults.
export {
  Worker,
  createWorker,
  DEFAULT_ACK_BATCH_MS,
  DEFAULT_ACK_DEADLINE_MS,
  DEFAULT_ACK_RETRY_TIMEOUT_MS,
  DEFAULT_ATTACH_TIMEOUT_MS,
  DEFAULT_MAX_ACK_REQUEST_BYTES,
  DEFAULT_MAX_QUEUED_SOURCE_MESSAGES,
  DEFAULT_START_TIMEOUT_MS,
  DEFAULT_BACKOFF,
} from './sdk/index.js';
export type {
  BackoffOptions,
  ConfirmedBeliefs,
  WorkerMetricsOptions,
  WorkerOptions,
  WorkerState,
} from './sdk/index.js';

// The worker's events, and waiting for one.
export { DEFAULT_WAIT_MS, waitForEvent } from './sdk/index.js';

// For a worker built into a V8 startup snapshot: the codec work every process would repeat, done once.
export { warmUpCodecs } from './sdk/index.js';
export type {
  CheckpointCallEvent,
  RestoredEvent,
  RunnerPhase,
  SnapshotEvent,
  WaitOptions,
  WorkerEventMap,
} from './sdk/index.js';

// Tasks, records and how their output is routed.
export { CheckpointDeclinedError, partitionOf } from './sdk/index.js';
export type {
  AnyTask,
  DataRecord,
  EmitOptions,
  Emission,
  Emissions,
  SnapshotContext,
  SourceMessage,
  SourcePosition,
  SourceTask,
  Task,
  TaskContext,
  TaskHooks,
} from './sdk/index.js';

// JetStream connectors: a source, and the exactly-once sink.
export {
  jetStreamSource,
  jetStreamSink,
  DEFAULT_SINK_DUPLICATE_WINDOW_MS,
  DEFAULT_SINK_MAX_IN_FLIGHT,
  DEFAULT_SINK_PUBLISH_TIMEOUT_MS,
} from './sdk/index.js';
export type { JetStreamSinkOptions, JetStreamSourceOptions } from './sdk/index.js';

// State: the backends, what a custom backend implements and checks, keyed state.
export {
  createStateBackend,
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  DEFAULT_DIRECTORY_SLICE_BYTES,
  DEFAULT_BUCKET,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_CHUNK_TIMEOUT_MS,
  DEFAULT_REPLICAS,
  sha256Checksum,
  verifyChecksum,
  KeyedState,
} from './sdk/index.js';
export type {
  DirectoryStateBackendConfig,
  JsonValue,
  LocalDirectoryBackend,
  LocalDirectoryBackendOptions,
  ObjectStoreBackend,
  ObjectStoreBackendOptions,
  ObjectStoreStateBackendConfig,
  ObjectStoreStorage,
  SnapshotKey,
  SnapshotOwner,
  StateBackend,
  StateBackendConfig,
} from './sdk/index.js';

// The logger the worker and the backends take.
export { createLogger, silentLogger } from './log/index.js';
export type { Logger } from './log/index.js';

// The clients of the coordinators, their options and their errors.
export {
  createCoordinatorClient,
  CoordinatorClient,
  createQueryClient,
  QueryClient,
  DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
  DEFAULT_DEADLINE_MS,
  DEFAULT_LEADER_RETRY,
  errorInfo,
  errorReason,
  isCancelled,
  toCkptError,
} from './client/index.js';
export type {
  CallOptions,
  ClientOptions,
  ClientTlsOptions,
  LeaderRetryOptions,
  RemoteErrorInfo,
} from './client/index.js';
export { CkptError, hasReason } from './core/errors.js';
export type { CkptErrorOptions, ErrorIds, ErrorReason } from './core/errors.js';

// The contract's messages users send and receive.
export * from './api-messages.js';
