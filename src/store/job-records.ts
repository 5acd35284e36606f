/**
 * Writing a job's records in etcd: its spec and run state, epoch, id floor
 * and restore point. Reading them back is in `job-read.ts`. What a write
 * finds in etcd is checked as a read is: a corrupt record is refused with
 * JOB_QUARANTINED, never used.
 */
import type { ICompare, IRequestOp } from 'etcd3';
import type { LeaderGuard, StoredJobState } from '../core/ports.js';
import type { RestorePoint } from '../core/restore-point.js';
import { CkptError, StaleEpochError, type ErrorIds } from '../core/errors.js';
import type { JobSpec__Output as JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState } from '../gen/ckpt/v1/JobState.js';
import { encodeForStore, storeCodecs } from './codecs.js';
import { storedJobBytes } from './spec-encoding.js';
import { deleteKeyOp, firstKv, getOp, modRevisionIs, noKeyUnder, putOp, valueIs, versionIs } from './etcd-ops.js';
import { checkStoredJob, counterValue, specProblem } from './job-checks.js';
import { existingJob, JOB_READ_OPS, jobReadOps } from './job-read.js';
import { assertJobId, pad } from './keys.js';
import { assertGuardHeld, guardCompares, guardReadOps, validateGuard } from './leader-guard.js';
import { inRange, MAX_STORED_COUNTER, MAX_TIME_MS } from './record-limits.js';
import { getValue, sendTxn, type StoreContext } from './store-context.js';

/** Attempts of `updateJob` when the spec changes between its read and its write. */
export const UPDATE_JOB_ATTEMPTS = 3;

/**
 * Creates the job with epoch 1, latest 0 and id floor 1 in one transaction
 * if it has no records (and `guard` holds); otherwise reads the job back in
 * the same transaction. Refuses with MALFORMED a spec that is invalid or
 * not normalised (`validateJobSpec`), since loading it would quarantine the
 * job; with JOB_QUARANTINED an existing job whose records are invalid,
 * among them one whose spec is missing beside other records.
 */
export async function createJob(
  ctx: StoreContext,
  spec: JobSpec,
  nowMs: number,
  guard?: LeaderGuard,
): Promise<{ job: StoredJobState; created: boolean }> {
  const jobId = spec.jobId;
  assertJobId(jobId);
  validateGuard(guard, { jobId });
  if (!inRange(nowMs, 0, MAX_TIME_MS))
    throw new CkptError('MALFORMED', `creation time ${nowMs} is not a time`, { jobId });
  const { keys } = ctx;
  const stored = encodeStoredJob(jobId, spec, 'JOB_STATE_RUNNING', nowMs);
  const context = { operation: 'create job', jobId };
  const response = await sendTxn(
    ctx,
    {
      compare: [...noJobRecords(ctx, jobId), ...guardCompares(guard)],
      success: [
        putOp(keys.spec(jobId), Buffer.from(stored)),
        putOp(keys.epoch(jobId), pad(1)),
        putOp(keys.latest(jobId), pad(0)),
        putOp(keys.idFloor(jobId), pad(1)),
        // Statistics left by an earlier job of this id are not this job's.
        deleteKeyOp(keys.stats(jobId)),
      ],
      failure: [...jobReadOps(ctx, jobId), ...guardReadOps(guard)],
    },
    context,
  );
  if (response.succeeded) {
    // The spec passed `specProblem`: it equals its normalised form, which is the shape a read decodes.
    const job: StoredJobState = {
      spec,
      state: 'JOB_STATE_RUNNING',
      createdAtMs: nowMs,
      epoch: 1,
      latestCheckpointId: 0,
      latestCheckpointEpoch: 0,
      idFloor: 1,
      retainedCheckpointIds: [],
    };
    return { job, created: true };
  }
  assertGuardHeld(guard, response.responses[JOB_READ_OPS], { jobId });
  const job = await existingJob(ctx, jobId, response.responses, { context, revision: response.header.revision });
  // The client retries a request whose reply was lost; finding exactly what
  // this call writes (spec and time) means an earlier attempt created it.
  const created =
    firstKv(response.responses[0])?.value.equals(stored) === true && job.epoch === 1 && job.latestCheckpointId === 0;
  return { job, created };
}

/** Compares that hold while the job has none of the records `createJob` writes or would find. */
function noJobRecords(ctx: StoreContext, jobId: string): ICompare[] {
  const { keys } = ctx;
  const single = [
    keys.spec(jobId),
    keys.epoch(jobId),
    keys.latest(jobId),
    keys.idFloor(jobId),
    keys.restorePoint(jobId),
  ];
  return [...single.map((key) => versionIs(key, 'Equal', 0)), noKeyUnder(keys.checkpoints(jobId))];
}

/**
 * Replaces the spec and run state of an existing job, keeping its creation
 * time; throws UNKNOWN_JOB if there is none, JOB_QUARANTINED if its stored
 * spec is invalid, MALFORMED for a spec or state that loading would refuse.
 */
export async function updateJob(
  ctx: StoreContext,
  jobId: string,
  spec: JobSpec,
  state: JobState,
  guard?: LeaderGuard,
): Promise<void> {
  if (spec.jobId !== jobId) {
    throw new CkptError('MALFORMED', `spec of job ${spec.jobId} given to update job ${jobId}`, { jobId });
  }
  validateGuard(guard, { jobId });
  const key = ctx.keys.spec(jobId);
  const context = { operation: 'update job', jobId };
  for (let attempt = 1; attempt <= UPDATE_JOB_ATTEMPTS; attempt++) {
    const { kv } = await getValue(ctx, key, context);
    if (kv === undefined) throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
    const previous = checkStoredJob(kv, jobId);
    const stored = encodeStoredJob(jobId, spec, state, previous.createdAtMs);
    const response = await sendTxn(
      ctx,
      {
        compare: [modRevisionIs(key, kv.mod_revision), ...guardCompares(guard)],
        success: [putOp(key, Buffer.from(stored))],
        failure: guardReadOps(guard),
      },
      context,
    );
    if (response.succeeded) return;
    assertGuardHeld(guard, response.responses[0], { jobId });
    ctx.logger.debug({ jobId, attempt }, 'job spec changed while it was updated; retrying');
  }
  throw new CkptError('INTERNAL', `job ${jobId} kept changing while it was updated`, { jobId, retryable: true });
}

/**
 * Raises the id floor to `floor`; does nothing if it is already at least
 * `floor`. Throws MALFORMED for a floor above `MAX_STORED_COUNTER`,
 * JOB_QUARANTINED when the stored floor is invalid.
 */
export async function reserveIds(ctx: StoreContext, jobId: string, floor: number, guard?: LeaderGuard): Promise<void> {
  const key = ctx.keys.idFloor(jobId);
  const padded = paddedCounter(floor, 'id floor', { jobId });
  validateGuard(guard, { jobId });
  const response = await sendTxn(
    ctx,
    {
      compare: [valueIs(key, 'Less', padded), ...guardCompares(guard)],
      success: [putOp(key, padded)],
      failure: [getOp(key), ...guardReadOps(guard)],
    },
    { operation: 'reserve ids', jobId },
  );
  if (response.succeeded) return;
  assertGuardHeld(guard, response.responses[1], { jobId });
  const current = firstKv(response.responses[0]);
  if (current === undefined) throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
  // Byte order is numeric order only between padded numbers.
  counterValue(current, key, jobId, 1);
}

/**
 * Moves the epoch from `expectedEpoch` to the next; throws STALE_EPOCH if it
 * was not `expectedEpoch`. A bump whose reply was lost and that the client
 * retried also ends in STALE_EPOCH, since the store cannot tell its own
 * earlier bump from another's; the caller reloads the epoch and bumps again
 * from there (an epoch skipped is harmless, one shared by two recoveries
 * would not be).
 *
 * With `restoreTo`, the same transaction requires checkpoint `restoreTo`
 * to be retained, else throws UNKNOWN_CHECKPOINT, and stores it as the
 * job's restore point in the new epoch. `latest` is left as it is.
 * Throws JOB_QUARANTINED when the stored epoch is invalid.
 */
export async function bumpEpoch(
  ctx: StoreContext,
  jobId: string,
  expectedEpoch: number,
  guard?: LeaderGuard,
  restoreTo?: number,
): Promise<number> {
  const key = ctx.keys.epoch(jobId);
  const next = expectedEpoch + 1;
  const padded = paddedCounter(next, 'next epoch', { jobId, epoch: expectedEpoch });
  validateGuard(guard, { jobId });
  const restore =
    restoreTo === undefined ? undefined : restorePointWrite(ctx, jobId, { checkpointId: restoreTo, epoch: next });
  const response = await sendTxn(
    ctx,
    {
      compare: [valueIs(key, 'Equal', pad(expectedEpoch)), ...(restore?.compares ?? []), ...guardCompares(guard)],
      success: [putOp(key, padded), ...(restore?.puts ?? [])],
      failure: [getOp(key), ...guardReadOps(guard)],
    },
    { operation: restore === undefined ? 'bump epoch' : 'bump epoch to restore', jobId, epoch: expectedEpoch },
  );
  if (response.succeeded) return next;
  assertGuardHeld(guard, response.responses[1], { jobId, epoch: expectedEpoch });
  const current = firstKv(response.responses[0]);
  if (current === undefined) throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
  const epoch = counterValue(current, key, jobId, 1);
  if (epoch === expectedEpoch && restoreTo !== undefined) {
    // The epoch and the leadership held: the checkpoint's root was the guard that failed.
    throw new CkptError('UNKNOWN_CHECKPOINT', `checkpoint ${restoreTo} of job ${jobId} is no longer retained`, {
      jobId,
      checkpointId: restoreTo,
    });
  }
  throw new StaleEpochError(`job ${jobId} is in epoch ${epoch}, not ${expectedEpoch}`, epoch, {
    jobId,
    epoch: expectedEpoch,
  });
}

/** The compare and put that store `point` while its checkpoint is retained. */
function restorePointWrite(
  ctx: StoreContext,
  jobId: string,
  point: RestorePoint,
): { compares: ICompare[]; puts: IRequestOp[] } {
  const value = encodeForStore(storeCodecs().restorePoint, point, 'restore point', { jobId });
  return {
    compares: [versionIs(ctx.keys.root(jobId, point.checkpointId), 'Greater', 0)],
    puts: [putOp(ctx.keys.restorePoint(jobId), Buffer.from(value))],
  };
}

/** `n` padded; MALFORMED unless it is a counter loading would accept (0 to `MAX_STORED_COUNTER`). */
export function paddedCounter(n: number, what: string, ids: ErrorIds): string {
  if (!inRange(n, 0, MAX_STORED_COUNTER)) {
    throw new CkptError('MALFORMED', `${what} ${n} is not an integer from 0 to ${MAX_STORED_COUNTER}`, ids);
  }
  return pad(n);
}

/** The StoredJob to write; MALFORMED for a spec or state that loading would refuse. */
function encodeStoredJob(jobId: string, spec: JobSpec, state: JobState, createdAtMs: number): Uint8Array {
  const problem = spec.jobId === jobId ? specProblem(spec) : `holds the spec of job ${spec.jobId}`;
  if (problem !== undefined) throw new CkptError('MALFORMED', `the job record to store ${problem}`, { jobId });
  if (state !== 'JOB_STATE_RUNNING' && state !== 'JOB_STATE_CANCELED') {
    throw new CkptError('MALFORMED', `job state ${String(state)} cannot be stored`, { jobId });
  }
  try {
    return storedJobBytes(spec, state, createdAtMs);
  } catch (err) {
    throw new CkptError('MALFORMED', `job spec cannot be encoded: ${(err as Error).message}`, { jobId, cause: err });
  }
}
