/**
 * What a simulated worker reports while it runs.
 */
import type { RestoreCommand__Output } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { StartCommand__Output } from '../../src/gen/ckpt/v1/StartCommand.js';
import type { AcknowledgeCheckpointResponse__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { CheckpointAbort__Output } from '../../src/gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../../src/gen/ckpt/v1/CheckpointComplete.js';
import type { JobCanceledCommand__Output } from '../../src/gen/ckpt/v1/JobCanceledCommand.js';
import type { Recover__Output } from '../../src/gen/ckpt/v1/Recover.js';
import type { Trigger__Output } from '../../src/gen/ckpt/v1/Trigger.js';
import type { Welcome__Output } from '../../src/gen/ckpt/v1/Welcome.js';

/** One AcknowledgeCheckpoint or DeclineCheckpoint call and its outcome. */
export interface CallEvent {
  checkpointId: number;
  epoch: number;
  taskIds: string[];
}

/** The events of a simulated worker, by name, with their arguments. */
export interface SimEventMap {
  /** The session is open (again, after a re-attach). */
  welcome: [Welcome__Output];
  /** A trigger of the confirmed term for this worker's sources, in the current epoch with a plausible id. */
  trigger: [Trigger__Output];
  /** An acknowledgement call succeeded. */
  acked: [CallEvent & { response: AcknowledgeCheckpointResponse__Output }];
  /** A decline call succeeded. */
  declined: [CallEvent];
  /** An acknowledgement or decline was refused or given up after its retries; `error` says why. */
  'call-failed': [CallEvent & { method: 'acknowledgeCheckpoint' | 'declineCheckpoint'; error: Error }];
  /** A `complete` broadcast of a checkpoint the worker acknowledged and the coordinator accepted. */
  complete: [CheckpointComplete__Output];
  /** An `abort` broadcast of the current epoch. */
  abort: [CheckpointAbort__Output];
  /** A `recover` broadcast of a newer epoch: advisory, the session's restore moves the worker. */
  recover: [Recover__Output];
  /**
   * A control message, barrier or command dropped, and why (`DropReason`,
   * or `stale-term` for a command): of another epoch, of another leader
   * term than the confirmed one (with `term` and `currentTerm`), junk.
   */
  dropped: [{ what: string; reason: string; epoch: number; currentEpoch: number; term?: number; currentTerm?: number }];
  /** The coordinator asked for a restore; the worker adopted its epoch and reported ready. */
  restore: [RestoreCommand__Output];
  /** Every task of the job is ready: the job runs in this epoch. */
  start: [StartCommand__Output];
  /** The coordinator canceled the job. */
  canceled: [JobCanceledCommand__Output];
  /** A heartbeat of the session was sent, at `sentAtMs`. */
  heartbeat: [{ sentAtMs: number }];
  /** The Attach stream ended; `error` unless the worker ended it itself. */
  'session-ended': [{ error?: Error }];
}
