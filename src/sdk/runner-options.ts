/**
 * What a task's runner is given: its options (the task, its edges and
 * plane, its state backend, its limits, and the callbacks by which it
 * reports results, snapshots and failures), and what a restore brings back.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { CkptError } from '../core/errors.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../log/index.js';
import type { TaskResult } from '../worker-protocol/index.js';
import type { AlignmentMode } from './alignment.js';
import type { DataPlane } from './data-plane.js';
import type { SnapshotEvent, SnapshotterOptions } from './snapshotter.js';
import type { StateBackend } from './state/index.js';
import type { AnyTask } from './task.js';
import type { TaskCounts } from './worker-metrics.js';

/**
 * What a runner works with; the key groups and codec of its keyed state,
 * and the trigger times of checkpoints, go to its snapshotter.
 */
export interface RunnerOptions extends Pick<SnapshotterOptions, 'keyGroups' | 'codec' | 'triggeredAtMs'> {
  jobId: string;
  taskId: string;
  task: AnyTask;
  inputs: readonly string[];
  outputs: readonly string[];
  mode: AlignmentMode;
  /** ALIGNED mode: a checkpoint waiting this long to align is taken unaligned (the policy's `aligned_checkpoint_timeout_ms`); 0: never. */
  alignedCheckpointTimeoutMs?: number;
  plane: DataPlane;
  backend: StateBackend;
  nats: NatsConnection;
  logger: Logger;
  /** A source reads ahead at most this many messages. */
  maxQueuedSourceMessages: number;
  /** The window of the task's input edges (`WorkerOptions.flowControlWindow`); 0: no credits sent. */
  flowControlWindow: number;
  /** How long a call of an ended run is waited for before it is abandoned. */
  abandonCallAfterMs: number;
  /** Where the task counts its records in and out (the worker's metrics); undefined: not counted. */
  counts?: TaskCounts | undefined;
  /** The task's acknowledgement or decline of a checkpoint. */
  onResult(checkpointId: number, epoch: number, result: TaskResult): void;
  /** The task took a snapshot (for listeners). */
  onSnapshot(event: SnapshotEvent): void;
  /** The task failed in `epoch`. */
  onFailure(taskId: string, epoch: number, error: CkptError): void;
}

/** What a restore brings back. */
export interface RestoreRequest {
  epoch: number;
  checkpointId: number;
  /** The task's entry of the manifest; undefined for none. */
  snapshot: TaskSnapshot__Output | undefined;
  /** The job whose savepoint the checkpoint maps, whose pieces may be read too ('' for none). */
  sourceJobId?: string;
  signal: AbortSignal;
}
