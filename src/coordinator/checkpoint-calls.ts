/**
 * Acknowledgements and declines as they arrive, by call or inside a
 * session: their fields are checked and bounded here before the job's
 * runtime records them. Which worker sent them is settled by the caller
 * (the session, or the session token of a call).
 */
import type { TaskDecline } from '../gen/ckpt/v1/TaskDecline.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CkptError } from '../core/errors.js';
import { checkCheckpointRef, checkDeclines } from '../core/request-checks.js';
import type { JobRuntime } from './job-runtime.js';

/** An acknowledgement of one checkpoint by one worker, as received. */
export interface AckCall {
  epoch?: unknown;
  checkpointId?: unknown;
  snapshots?: TaskSnapshot__Output[];
}

/** A decline of one checkpoint by one worker, as received. */
export interface DeclineCall {
  epoch?: unknown;
  checkpointId?: unknown;
  declines?: TaskDecline[];
}

/** What an accepted acknowledgement reports. */
export interface AckResult {
  acknowledgedTasks: number;
  totalTasks: number;
  duplicates: number;
}

/** Checks and records a worker's acknowledgements; the job commits once every task acknowledged. */
export function recordAcks(runtime: JobRuntime, workerId: string, request: AckCall): AckResult {
  const ids = { jobId: runtime.jobId };
  const ref = checkCheckpointRef(request, ids);
  const snapshots = request.snapshots ?? [];
  if (snapshots.length === 0) throw new CkptError('MALFORMED', 'snapshots is empty', ids);
  if (snapshots.length > runtime.tracker.spec.tasks.length) {
    throw new CkptError('OVERSIZED', `snapshots has more entries than the job has tasks`, ids);
  }
  const { checkpoint, duplicates } = runtime.acknowledge({ ...ref, workerId }, snapshots);
  return { acknowledgedTasks: checkpoint.acknowledgedTasks, totalTasks: checkpoint.init.taskIds.length, duplicates };
}

/** Checks and records a worker's declines, each message at most `maxTextBytes`: the checkpoint aborts with reason DECLINED. */
export function recordDeclines(
  runtime: JobRuntime,
  workerId: string,
  request: DeclineCall,
  maxTextBytes: number,
): void {
  const ids = { jobId: runtime.jobId };
  const ref = checkCheckpointRef(request, ids);
  const declines = checkDeclines(request.declines ?? [], runtime.tracker.spec.tasks.length, maxTextBytes, ids);
  runtime.decline({ ...ref, workerId }, declines);
}
