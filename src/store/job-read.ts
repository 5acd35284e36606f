/**
 * Reading jobs back from etcd: each job's records read at one revision and
 * checked (see `job-checks.ts`). Loading every job quarantines a job whose
 * records are invalid instead of failing: only an etcd that cannot be read
 * fails the load.
 */
import type { IRequestOp, IResponseOp } from 'etcd3';
import { CkptError } from '../core/errors.js';
import type { LoadedJobs, QuarantinedJob, StoredJobState } from '../core/ports.js';
import { CorruptRecordError } from './corrupt-record.js';
import { firstKv, getOp, lastInPrefixOp, rangeKvs, rangePrefixOp } from './etcd-ops.js';
import { checkJobRecords, type JobRecords } from './job-checks.js';
import { unpad } from './keys.js';
import { mapConcurrent } from './concurrency.js';
import { inRange, MAX_CHECKPOINT_KEYS, MAX_STORED_COUNTER } from './record-limits.js';
import { getValue, listKeys, sendTxn, type StoreContext } from './store-context.js';
import { readStatistics } from './statistics.js';
import type { EtcdCallContext } from './translate-error.js';

/** Jobs read at once by `loadJobs`. */
export const LOAD_JOBS_CONCURRENCY = 8;

/** How many operations `jobReadOps` returns. */
export const JOB_READ_OPS = 7;

/**
 * Every job under the prefix (that `include` accepts), in job id order:
 * those whose records pass every check, and the others as quarantined with
 * the key and problem. Throws only when etcd cannot be read (the translated
 * error).
 */
export async function loadJobs(ctx: StoreContext, include?: (jobId: string) => boolean): Promise<LoadedJobs> {
  const listing = await listKeys(ctx, ctx.keys.jobs(), { operation: 'list jobs' });
  const jobIds = new Set<string>();
  for (const kv of listing.kvs) {
    const jobId = ctx.keys.jobOf(kv.key.toString());
    if (jobId !== undefined && (include === undefined || include(jobId))) jobIds.add(jobId);
  }
  const loaded = await mapConcurrent([...jobIds], LOAD_JOBS_CONCURRENCY, (jobId) => loadJob(ctx, jobId));
  const result: LoadedJobs = { jobs: [], quarantined: [] };
  for (const outcome of loaded) {
    if (outcome.job !== undefined) result.jobs.push(outcome.job);
    if (outcome.quarantined !== undefined) result.quarantined.push(outcome.quarantined);
  }
  return result;
}

/** One job as loaded: valid, quarantined, or neither when it has no records (only parts or unknown keys). */
interface LoadOutcome {
  job?: StoredJobState;
  quarantined?: QuarantinedJob;
}

async function loadJob(ctx: StoreContext, jobId: string): Promise<LoadOutcome> {
  const records = await readJobRecords(ctx, jobId);
  let job: StoredJobState | undefined;
  try {
    job = checkJobRecords(ctx.keys, records);
  } catch (err) {
    // Whatever the checks throw comes from the records: it quarantines the job, never fails the load.
    const reason = err instanceof CorruptRecordError ? err.summary : `${ctx.keys.job(jobId)}: ${String(err)}`;
    ctx.logger.warn({ jobId, reason }, 'job quarantined: its records in etcd are invalid');
    return { quarantined: { jobId, reason } };
  }
  if (job === undefined) return {};
  // Unreadable statistics are logged and left out; they never quarantine a job.
  const statistics = await readStatistics(ctx, jobId);
  return { job: statistics === undefined ? job : { ...job, statistics } };
}

async function readJobRecords(ctx: StoreContext, jobId: string): Promise<JobRecords> {
  const context: EtcdCallContext = { operation: 'read job', jobId };
  const response = await sendTxn(ctx, { success: jobReadOps(ctx, jobId) }, context);
  return gatherJobRecords(ctx, jobId, response.responses, { context, revision: response.header.revision });
}

/** Reads of everything `gatherJobRecords` needs, for one transaction. */
export function jobReadOps(ctx: StoreContext, jobId: string): IRequestOp[] {
  const { keys } = ctx;
  return [
    getOp(keys.spec(jobId)),
    getOp(keys.epoch(jobId)),
    getOp(keys.latest(jobId)),
    getOp(keys.idFloor(jobId)),
    rangePrefixOp(keys.checkpoints(jobId), true, MAX_CHECKPOINT_KEYS),
    getOp(keys.restorePoint(jobId)),
    // Usually the last key of the checkpoints is the summary of the latest one.
    lastInPrefixOp(keys.checkpoints(jobId)),
  ];
}

/**
 * The records from the responses of `jobReadOps` read at `at.revision`.
 * When the last key under the checkpoints is not the latest checkpoint's
 * summary (an unknown key sorts after it, or it is missing), that summary
 * is read at the same revision.
 */
export async function gatherJobRecords(
  ctx: StoreContext,
  jobId: string,
  responses: IResponseOp[],
  at: { context: EtcdCallContext; revision: string },
): Promise<JobRecords> {
  const [spec, epoch, latest, idFloor, checkpoints, restorePoint, last] = responses;
  const records: JobRecords = {
    jobId,
    spec: firstKv(spec),
    epoch: firstKv(epoch),
    latest: firstKv(latest),
    idFloor: firstKv(idFloor),
    restorePoint: firstKv(restorePoint),
    checkpointKeys: rangeKvs(checkpoints),
    moreCheckpointKeys: checkpoints?.response_range?.more === true,
    latestSummary: undefined,
  };
  const latestId = records.latest === undefined ? undefined : unpad(records.latest.value.toString('latin1'));
  // An invalid latest id quarantines the job anyway; its summary is not needed then.
  if (latestId !== undefined && inRange(latestId, 1, MAX_STORED_COUNTER)) {
    const key = ctx.keys.summary(jobId, latestId);
    const lastKv = firstKv(last);
    records.latestSummary =
      lastKv?.key.toString() === key ? lastKv : (await getValue(ctx, key, at.context, at.revision)).kv;
  }
  return records;
}

/** The job read back by a transaction of `jobReadOps` that found it; INTERNAL when it has no records at all. */
export async function existingJob(
  ctx: StoreContext,
  jobId: string,
  responses: IResponseOp[],
  at: { context: EtcdCallContext; revision: string },
): Promise<StoredJobState> {
  const job = checkJobRecords(ctx.keys, await gatherJobRecords(ctx, jobId, responses, at));
  if (job === undefined) throw new CkptError('INTERNAL', `job ${jobId} vanished while it was created`, { jobId });
  return job;
}
