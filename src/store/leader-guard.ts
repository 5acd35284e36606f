/**
 * Fencing writes to the current leader: a transaction guarded by a
 * `LeaderGuard` also compares the create revision of the leader's election
 * key, and a refused one reads the key back to tell a lost leadership from
 * the other guards.
 */
import type { ICompare, IRequestOp, IResponseOp } from 'etcd3';
import { CkptError, LeadershipLostError, type ErrorIds } from '../core/errors.js';
import type { LeaderGuard } from '../core/ports.js';
import { createRevisionIs, firstKv, getOp } from './etcd-ops.js';

/** The compare of `guard`, or none without a guard. */
export function guardCompares(guard: LeaderGuard | undefined): ICompare[] {
  return guard === undefined ? [] : [createRevisionIs(guard.key, guard.createRevision)];
}

/** The read of the guard key for a failure branch, or none without a guard. */
export function guardReadOps(guard: LeaderGuard | undefined): IRequestOp[] {
  return guard === undefined ? [] : [getOp(guard.key, true)];
}

/**
 * After a refused transaction: throws `LeadershipLostError` when `response`
 * (the result of `guardReadOps`) shows the guard key changed.
 */
export function assertGuardHeld(
  guard: LeaderGuard | undefined,
  response: IResponseOp | undefined,
  ids: ErrorIds,
): void {
  if (guard === undefined || firstKv(response)?.create_revision === guard.createRevision) return;
  throw leadershipLost(guard, ids);
}

/** The refusal of a write whose guard key changed. */
export function leadershipLost(guard: LeaderGuard, ids: ErrorIds): LeadershipLostError {
  return new LeadershipLostError(`leadership key ${guard.key} changed: this coordinator is no longer the leader`, ids);
}

/** Throws MALFORMED unless `guard` is absent or names a key and a positive decimal revision. */
export function validateGuard(guard: LeaderGuard | undefined, ids: ErrorIds = {}): void {
  if (guard === undefined) return;
  if (typeof guard.key !== 'string' || guard.key.length === 0 || !/^[1-9]\d*$/.test(guard.createRevision)) {
    throw new CkptError('MALFORMED', 'the leadership guard needs a key and a positive decimal create revision', ids);
  }
}
