/**
 * The worker SDK: run stateful tasks of a ckpt job with consistent
 * checkpoints and coordinated recovery. A `Worker` runs tasks (`Task` for
 * tasks with inputs, `SourceTask` for sources) wired by the job spec;
 * barriers, alignment (the policy's ALIGNED, UNALIGNED or AT_LEAST_ONCE
 * mode), snapshots, acknowledgements, restores and epochs are handled by
 * the SDK. JetStream sources and an exactly-once JetStream sink
 * are included; snapshots go to a `StateBackend` (`./state`).
 */
export { Worker, createWorker } from './worker.js';
export type { WorkerState } from './worker.js';
export type { ConfirmedBeliefs } from './worker-runtime.js';
export {
  DEFAULT_ACK_BATCH_MS,
  DEFAULT_ACK_DEADLINE_MS,
  DEFAULT_ACK_RETRY_TIMEOUT_MS,
  DEFAULT_ATTACH_TIMEOUT_MS,
  DEFAULT_MAX_QUEUED_SOURCE_MESSAGES,
  DEFAULT_START_TIMEOUT_MS,
  SDK_LABEL,
  defaultWorkerId,
  resolveWorkerOptions,
} from './options.js';
export type { WorkerConfig, WorkerMetricsOptions, WorkerOptions } from './options.js';
export type { NatsAuthOptions } from '../bus/index.js';
export { DEFAULT_MAX_ACK_REQUEST_BYTES } from '../worker-protocol/index.js';
export { DEFAULT_BACKOFF, backoffDelayMs, resolveBackoff } from '../core/backoff.js';
export type { BackoffConfig, BackoffOptions } from '../core/backoff.js';
export type { CheckpointCallEvent, RestoredEvent, WorkerEventMap } from './events.js';
export type { RunnerPhase } from './task-runner.js';
export type { SnapshotEvent } from './snapshotter.js';
export { isSourceTask } from './task.js';
export { CheckpointDeclinedError } from './checkpoint-declined.js';
export type {
  AnyTask,
  DataRecord,
  SnapshotContext,
  SourceMessage,
  SourcePosition,
  SourceTask,
  Task,
  TaskContext,
  TaskHooks,
} from './task.js';
export { Router, fnv1a32, partitionOf } from './router.js';
export type { EmitOptions } from './router.js';
export { emitAll } from './emission.js';
export type { Emission, Emissions } from './emission.js';
export { edgeSubject, taskOfEdgeSubject } from './subjects.js';
export type { Edge } from './subjects.js';
export { KEY_HEADER } from './record.js';
export { InputAligner } from './alignment.js';
export { decodeUnalignedSnapshot, encodeUnalignedSnapshot } from './unaligned-snapshot.js';
export type { InFlightRecord, UnalignedSnapshot } from './unaligned-snapshot.js';
export type { AlignAction, AlignmentMode, InputItem } from './alignment.js';
export { jobGraph } from './graph.js';
export type { JobGraph } from './graph.js';
export { jetStreamSource, jetStreamInput } from './source-jetstream.js';
export type { JetStreamSourceOptions } from './source-jetstream.js';
export {
  jetStreamSink,
  sinkMessageId,
  DEFAULT_SINK_DUPLICATE_WINDOW_MS,
  DEFAULT_SINK_MAX_IN_FLIGHT,
  DEFAULT_SINK_PUBLISH_TIMEOUT_MS,
} from './sink-jetstream.js';
export type { JetStreamSinkOptions } from './sink-jetstream.js';
export { SinkStaging } from './sink-staging.js';
export { ensureStream } from './jetstream-stream.js';
export type { StreamSpec } from './jetstream-stream.js';
export { DEFAULT_WAIT_MS, waitForEvent } from './wait.js';
export { warmUpCodecs } from './codec-warm-up.js';
export type { WaitOptions } from './wait.js';
export * from './state/index.js';
