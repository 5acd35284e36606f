/**
 * What a `Worker` reports while it runs, for applications and tests.
 */
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { JobCanceledCommand__Output } from '../gen/ckpt/v1/JobCanceledCommand.js';
import type { Recover__Output } from '../gen/ckpt/v1/Recover.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import type { CkptError } from '../core/errors.js';
import type { SnapshotEvent } from './snapshotter.js';

/** The worker's tasks restored a checkpoint in an epoch. */
export interface RestoredEvent {
  epoch: number;
  /** 0: started from empty state. */
  checkpointId: number;
  /** The tasks that restored; a task that failed to restore is reported by `failed`. */
  taskIds: string[];
}

/** An acknowledgement or decline call and its tasks. */
export interface CheckpointCallEvent {
  checkpointId: number;
  epoch: number;
  taskIds: string[];
}

/** The events of a worker, by name, with their arguments. */
export interface WorkerEventMap {
  /** A session opened (also after a reconnect). */
  welcome: [Welcome__Output];
  /** The session was lost; the worker reconnects while its tasks go on. */
  'session-lost': [{ error: Error }];
  /** The worker's tasks restored a checkpoint and reported ready. */
  restored: [RestoredEvent];
  /** The job started in `epoch`: sources read. */
  started: [{ epoch: number }];
  /** A task took a snapshot (before it is stored). */
  snapshot: [SnapshotEvent];
  /** An acknowledgement call succeeded. */
  'checkpoint-acked': [
    CheckpointCallEvent & { snapshots: TaskSnapshot[]; response: AcknowledgeCheckpointResponse__Output },
  ];
  /** A decline call succeeded. */
  'checkpoint-declined': [CheckpointCallEvent & { messages: string[] }];
  /** An acknowledgement or decline was refused or could not be sent. */
  'ack-failed': [CheckpointCallEvent & { error: CkptError }];
  /**
   * A `complete` broadcast of a checkpoint this worker acknowledged in its
   * epoch and the coordinator accepted (any other is dropped).
   */
  complete: [CheckpointComplete__Output];
  /** An `abort` broadcast of the worker's epoch with a plausible checkpoint id. */
  abort: [CheckpointAbort__Output];
  /**
   * A `recover` broadcast naming a newer epoch. Advisory only: the tasks
   * go on until the session's restore moves them to the new epoch.
   */
  recover: [Recover__Output];
  /** A task failed; the coordinator rolls the job back. */
  failed: [{ taskId: string; epoch: number; error: CkptError }];
  /** The job was canceled; the worker stops. */
  canceled: [JobCanceledCommand__Output];
  /** The worker stopped; `error` when it stopped because of one. */
  stopped: [{ error?: CkptError }];
}
