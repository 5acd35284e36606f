/**
 * A job's records in etcd: its spec and run state, epoch, latest committed
 * checkpoint id (and the epoch it was committed in), id floor, restore
 * point, and the ids of its retained checkpoints.
 */
import type { ICompare, IKeyValue, IRequestOp, IResponseOp } from 'etcd3';
import type { LeaderGuard, LoadedJobs, StoredJobState } from '../core/ports.js';
import type { RestorePoint } from '../core/restore-point.js';
import { CkptError } from '../core/errors.js';
import type { JobSpec__Output as JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState } from '../gen/ckpt/v1/JobState.js';
import { decodeStored, encodeForStore, storeCodecs } from './codecs.js';
import {
  firstKv,
  getOp,
  lastInPrefixOp,
  modRevisionIs,
  putOp,
  rangeKvs,
  rangePrefixOp,
  valueIs,
  versionIs,
} from './etcd-ops.js';
import { assertJobId, pad, unpad } from './keys.js';
import { mapConcurrent } from './concurrency.js';
import { assertGuardHeld, guardCompares, guardReadOps, validateGuard } from './leader-guard.js';
import { getValue, listKeys, sendTxn, type StoreContext } from './store-context.js';

/** Jobs read at once by `loadJobs`. */
export const LOAD_JOBS_CONCURRENCY = 8;
/** Attempts of `updateJob` when the spec changes between its read and its write. */
export const UPDATE_JOB_ATTEMPTS = 3;

/** Every job under the prefix, each read in one transaction. */
export async function loadJobs(ctx: StoreContext): Promise<LoadedJobs> {
  const listing = await listKeys(ctx, ctx.keys.jobs(), { operation: 'list jobs' });
  const jobIds: string[] = [];
  for (const kv of listing.kvs) {
    const parsed = ctx.keys.parse(kv.key.toString());
    if (parsed?.kind === 'spec') jobIds.push(parsed.jobId);
  }
  const jobs = await mapConcurrent(jobIds, LOAD_JOBS_CONCURRENCY, (jobId) => readJob(ctx, jobId));
  return { jobs: jobs.filter((job): job is StoredJobState => job !== undefined), quarantined: [] };
}

/** One job's records, undefined when it has no spec. */
export async function readJob(ctx: StoreContext, jobId: string): Promise<StoredJobState | undefined> {
  const response = await sendTxn(ctx, { success: jobReadOps(ctx, jobId) }, { operation: 'read job', jobId });
  return parseJobRead(ctx, jobId, response.responses);
}

/**
 * Creates the job with epoch 1, latest 0 and id floor 1 in one transaction
 * if its spec key is absent (and `guard` holds); otherwise reads the job
 * back in the same transaction.
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
  const { keys } = ctx;
  const stored = encodeStoredJob(jobId, spec, 'JOB_STATE_RUNNING', nowMs);
  const response = await sendTxn(
    ctx,
    {
      compare: [versionIs(keys.spec(jobId), 'Equal', 0), ...guardCompares(guard)],
      success: [
        putOp(keys.spec(jobId), Buffer.from(stored)),
        putOp(keys.epoch(jobId), pad(1)),
        putOp(keys.latest(jobId), pad(0)),
        putOp(keys.idFloor(jobId), pad(1)),
      ],
      failure: [...jobReadOps(ctx, jobId), ...guardReadOps(guard)],
    },
    { operation: 'create job', jobId },
  );
  if (response.succeeded) {
    // Decoded back, so that the spec has the same shape as one read later.
    const job: StoredJobState = {
      spec: storeCodecs().storedJob.decode(stored).spec ?? spec,
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
  const job = parseJobRead(ctx, jobId, response.responses);
  if (job === undefined) throw new CkptError('INTERNAL', `job ${jobId} vanished while it was created`, { jobId });
  // The client retries a request whose reply was lost; finding exactly what
  // this call writes (spec and time) means an earlier attempt created it.
  const created =
    firstKv(response.responses[0])?.value.equals(stored) === true && job.epoch === 1 && job.latestCheckpointId === 0;
  return { job, created };
}

/**
 * Replaces the spec and run state of an existing job, keeping its creation
 * time; throws UNKNOWN_JOB if there is none.
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
    const previous = decodeStored(storeCodecs().storedJob, kv.value, key, { jobId });
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

/** Raises the id floor to `floor`; does nothing if it is already at least `floor`. */
export async function reserveIds(ctx: StoreContext, jobId: string, floor: number, guard?: LeaderGuard): Promise<void> {
  const key = ctx.keys.idFloor(jobId);
  const padded = pad(floor);
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
  if (firstKv(response.responses[0]) === undefined) {
    throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
  }
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
  validateGuard(guard, { jobId });
  const restore =
    restoreTo === undefined ? undefined : restorePointWrite(ctx, jobId, { checkpointId: restoreTo, epoch: next });
  const response = await sendTxn(
    ctx,
    {
      compare: [valueIs(key, 'Equal', pad(expectedEpoch)), ...(restore?.compares ?? []), ...guardCompares(guard)],
      success: [putOp(key, pad(next)), ...(restore?.puts ?? [])],
      failure: [getOp(key), ...guardReadOps(guard)],
    },
    { operation: restore === undefined ? 'bump epoch' : 'bump epoch to restore', jobId, epoch: expectedEpoch },
  );
  if (response.succeeded) return next;
  assertGuardHeld(guard, response.responses[1], { jobId, epoch: expectedEpoch });
  const current = firstKv(response.responses[0]);
  if (current === undefined) throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
  const epoch = paddedValue(current, jobId);
  if (epoch === expectedEpoch && restoreTo !== undefined) {
    // The epoch and the leadership held: the checkpoint's root was the guard that failed.
    throw new CkptError('UNKNOWN_CHECKPOINT', `checkpoint ${restoreTo} of job ${jobId} is no longer retained`, {
      jobId,
      checkpointId: restoreTo,
    });
  }
  throw new CkptError('STALE_EPOCH', `job ${jobId} is in epoch ${epoch}, not ${expectedEpoch}`, {
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

function encodeStoredJob(jobId: string, spec: JobSpec, state: JobState, createdAtMs: number): Uint8Array {
  return encodeForStore(storeCodecs().storedJob, { spec, state, createdAtMs }, 'job spec', { jobId });
}

/** How many operations `jobReadOps` returns. */
const JOB_READ_OPS = 7;

/** Reads of everything `parseJobRead` needs, for one transaction. */
export function jobReadOps(ctx: StoreContext, jobId: string): IRequestOp[] {
  const { keys } = ctx;
  return [
    getOp(keys.spec(jobId)),
    getOp(keys.epoch(jobId)),
    getOp(keys.latest(jobId)),
    getOp(keys.idFloor(jobId)),
    rangePrefixOp(keys.checkpoints(jobId), true),
    getOp(keys.restorePoint(jobId)),
    // The last key of the checkpoints is the summary of the newest one, the latest.
    lastInPrefixOp(keys.checkpoints(jobId)),
  ];
}

/** The job from the responses of `jobReadOps`; undefined when it has no spec. */
export function parseJobRead(ctx: StoreContext, jobId: string, responses: IResponseOp[]): StoredJobState | undefined {
  const [
    specResponse,
    epochResponse,
    latestResponse,
    floorResponse,
    checkpointsResponse,
    restoreResponse,
    lastResponse,
  ] = responses;
  const specKv = firstKv(specResponse);
  if (specKv === undefined) return undefined;
  const stored = decodeStored(storeCodecs().storedJob, specKv.value, specKv.key.toString(), { jobId });
  if (stored.spec === null) throw new CkptError('INTERNAL', `job ${jobId} is stored without a spec`, { jobId });
  const retainedCheckpointIds: number[] = [];
  for (const kv of rangeKvs(checkpointsResponse)) {
    const parsed = ctx.keys.parse(kv.key.toString());
    if (parsed?.kind === 'root') retainedCheckpointIds.push(parsed.checkpointId);
  }
  const latestCheckpointId = paddedValue(requiredKv(latestResponse, 'latest', jobId), jobId);
  const restorePoint = parseRestorePoint(firstKv(restoreResponse), jobId);
  return {
    spec: stored.spec,
    state: stored.state,
    createdAtMs: stored.createdAtMs,
    epoch: paddedValue(requiredKv(epochResponse, 'epoch', jobId), jobId),
    latestCheckpointId,
    latestCheckpointEpoch: latestEpoch(ctx, jobId, latestCheckpointId, firstKv(lastResponse)),
    idFloor: paddedValue(requiredKv(floorResponse, 'id-floor', jobId), jobId),
    retainedCheckpointIds,
    ...(restorePoint === undefined ? {} : { restorePoint }),
  };
}

function parseRestorePoint(kv: IKeyValue | undefined, jobId: string): RestorePoint | undefined {
  if (kv === undefined) return undefined;
  const { checkpointId, epoch } = decodeStored(storeCodecs().restorePoint, kv.value, kv.key.toString(), { jobId });
  return { checkpointId, epoch };
}

/** The epoch of the latest checkpoint, from its summary: `last`, the last key of the job's checkpoints. */
function latestEpoch(ctx: StoreContext, jobId: string, latest: number, last: IKeyValue | undefined): number {
  if (latest === 0) return 0;
  const key = last?.key.toString() ?? '';
  const parsed = ctx.keys.parse(key);
  if (last === undefined || parsed?.kind !== 'summary' || parsed.checkpointId !== latest) {
    throw new CkptError('INTERNAL', `job ${jobId} has no summary of its latest checkpoint ${latest}`, {
      jobId,
      checkpointId: latest,
    });
  }
  return decodeStored(storeCodecs().summary, last.value, key, { jobId, checkpointId: latest }).epoch;
}

function requiredKv(response: IResponseOp | undefined, name: string, jobId: string): IKeyValue {
  const kv = firstKv(response);
  if (kv === undefined) throw new CkptError('INTERNAL', `job ${jobId} has a spec but no ${name} key`, { jobId });
  return kv;
}

/** The number in a padded counter value; INTERNAL when it is not one. */
export function paddedValue(kv: IKeyValue, jobId: string): number {
  const text = kv.value.toString();
  const n = unpad(text);
  if (n === undefined) {
    throw new CkptError('INTERNAL', `etcd value at ${kv.key.toString()} is corrupt: ${JSON.stringify(text)}`, {
      jobId,
    });
  }
  return n;
}
