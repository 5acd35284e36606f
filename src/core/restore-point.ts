/**
 * Which checkpoint a recovery restores from. Normally the latest committed
 * one. After an operator restored the job to an older retained checkpoint
 * (RestoreJob), that checkpoint, the restore point, until a checkpoint is
 * committed in the restore's epoch or later. `latest` in etcd never goes
 * backwards, so the restore point is stored beside it, with its epoch, and
 * every coordinator applies this one rule to what etcd holds.
 */
import { CkptError } from './errors.js';

/** A job's restore to a checkpoint an operator chose. */
export interface RestorePoint {
  /** The retained checkpoint the job was restored to. */
  checkpointId: number;
  /** The epoch the restore moved the job to. */
  epoch: number;
}

/** The latest committed checkpoint and the epoch it was committed in; both 0 when there is none. */
export interface LatestCheckpoint {
  checkpointId: number;
  epoch: number;
}

/**
 * True while recoveries restore from `point`: no checkpoint has been
 * committed in its epoch or later. Every commit after a restore happens
 * in the restore's epoch or a later one, so the first commit ends it.
 */
export function restorePointInForce(latest: LatestCheckpoint, point: RestorePoint | undefined): point is RestorePoint {
  return point !== undefined && latest.epoch < point.epoch;
}

/** The checkpoint a recovery restores from; 0 when there is none (tasks start empty). */
export function recoveryCheckpointId(latest: LatestCheckpoint, point: RestorePoint | undefined): number {
  return restorePointInForce(latest, point) ? point.checkpointId : latest.checkpointId;
}

/**
 * The checkpoint a restore request names: `requested`, or the latest when
 * it is 0. Throws UNKNOWN_CHECKPOINT, naming the retained ids, unless it
 * is one of `retained`.
 */
export function restoreTarget(jobId: string, requested: number, latest: number, retained: readonly number[]): number {
  const checkpointId = requested === 0 ? latest : requested;
  if (checkpointId > 0 && retained.includes(checkpointId)) return checkpointId;
  const kept = retained.length === 0 ? 'none' : retained.join(', ');
  const what = requested === 0 ? 'no committed checkpoint' : `no retained checkpoint ${requested}`;
  throw new CkptError('UNKNOWN_CHECKPOINT', `job ${jobId} has ${what} to restore; retained: ${kept}`, {
    jobId,
    ...(requested === 0 ? {} : { checkpointId: requested }),
  });
}
