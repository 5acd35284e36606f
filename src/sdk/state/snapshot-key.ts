/**
 * How a snapshot's key becomes a name in a store, and back: every backend
 * names a snapshot `<checkpointId>-<epoch>` under `<jobId>/<taskId>/`.
 */
import { CkptError, type ErrorIds } from '../../core/errors.js';
import { checkId } from '../../core/validate.js';
import type { SnapshotKey } from './state-backend.js';

/** A snapshot name parsed back into its checkpoint id and epoch. */
export interface SnapshotName {
  checkpointId: number;
  epoch: number;
}

const NAME_PATTERN = /^(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$/;

/**
 * Validates a key: ids must match `ID_PATTERN` (so they are safe as path
 * segments and object name parts), the numbers must be non-negative safe
 * integers. Returns the key's ids for errors; throws MALFORMED otherwise.
 */
export function checkSnapshotKey(key: SnapshotKey): Required<ErrorIds> {
  const jobId = checkId(key.jobId, 'jobId');
  const taskId = checkId(key.taskId, 'taskId', { jobId });
  const ids = { jobId, taskId, checkpointId: key.checkpointId, epoch: key.epoch };
  checkCount(key.checkpointId, 'checkpointId', ids);
  checkCount(key.epoch, 'epoch', ids);
  return ids;
}

/** `<checkpointId>-<epoch>`: the snapshot's name below its task's folder or prefix. */
export function snapshotName(key: SnapshotKey): string {
  return `${key.checkpointId}-${key.epoch}`;
}

/** Parses `<checkpointId>-<epoch>`; `undefined` for anything else. */
export function parseSnapshotName(name: string): SnapshotName | undefined {
  const match = NAME_PATTERN.exec(name);
  if (match === null) return undefined;
  const checkpointId = Number(match[1]);
  const epoch = Number(match[2]);
  if (!Number.isSafeInteger(checkpointId) || !Number.isSafeInteger(epoch)) return undefined;
  return { checkpointId, epoch };
}

function checkCount(value: number, field: string, ids: ErrorIds): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CkptError('MALFORMED', `${field} must be a non-negative integer, got ${String(value)}`, ids);
  }
}
