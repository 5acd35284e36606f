/**
 * Checks of a job's own records as read back, before anything uses them:
 * the StoredJob, the padded counters, the retained checkpoints against the
 * latest, the latest checkpoint's summary and the restore point. Each
 * check is of what a later use assumes; a failed one throws a
 * `CorruptRecordError` with reason JOB_QUARANTINED naming the key. Keys
 * the layout does not know are left alone: they are surprising, not
 * harmful.
 */
import { isDeepStrictEqual } from 'node:util';
import type { IKeyValue } from 'etcd3';
import type { StoredJobState } from '../core/ports.js';
import { restorePointInForce, type RestorePoint } from '../core/restore-point.js';
import { CEILING_LIMITS } from '../core/limits.js';
import { isNormalisedSpec, validateJobSpec } from '../core/validate.js';
import type { JobSpec__Output as JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { StoredJob__Output as StoredJob } from '../gen/ckpt/v1/StoredJob.js';
import { summaryProblem } from './checkpoint-checks.js';
import { decodeStored, storeCodecs } from './codecs.js';
import { corruptJobRecord, preview, type CorruptRecordError } from './corrupt-record.js';
import { PADDED_PATTERN, type KeyLayout } from './keys.js';
import { inRange, MAX_CHECKPOINT_KEYS, MAX_STORED_COUNTER, MAX_TIME_MS } from './record-limits.js';

/** One job's records as read at one revision; a record absent from etcd is undefined. */
export interface JobRecords {
  jobId: string;
  spec: IKeyValue | undefined;
  epoch: IKeyValue | undefined;
  latest: IKeyValue | undefined;
  idFloor: IKeyValue | undefined;
  restorePoint: IKeyValue | undefined;
  /** Keys, without values, under the job's `checkpoints/`; at most `MAX_CHECKPOINT_KEYS`. */
  checkpointKeys: IKeyValue[];
  /** Whether more keys than `MAX_CHECKPOINT_KEYS` exist there. */
  moreCheckpointKeys: boolean;
  /** The summary of the latest checkpoint, when it exists. */
  latestSummary: IKeyValue | undefined;
}

/**
 * The job its records describe, or undefined when it has none (no spec,
 * counter, restore point or checkpoint). Throws a `CorruptRecordError`
 * (JOB_QUARANTINED) naming the first record that is missing or invalid.
 */
export function checkJobRecords(keys: KeyLayout, records: JobRecords): StoredJobState | undefined {
  const { jobId } = records;
  if (records.spec === undefined) {
    const present = presentRecords(records);
    if (present.length === 0) return undefined;
    throw corruptJobRecord(jobId, keys.spec(jobId), `is missing, but the job has ${present.join(', ')}`);
  }
  const stored = checkStoredJob(records.spec, jobId);
  const epoch = counterValue(records.epoch, keys.epoch(jobId), jobId, 1);
  const latest = counterValue(records.latest, keys.latest(jobId), jobId, 0);
  const idFloor = counterValue(records.idFloor, keys.idFloor(jobId), jobId, 1);
  const retained = retainedIds(keys, records, latest);
  const latestEpoch = latestCheckpointEpoch(keys, records, latest, epoch);
  const restorePoint = checkRestorePoint(keys, records, { epoch, latest, latestEpoch, retained });
  return {
    spec: stored.spec,
    state: stored.state,
    createdAtMs: stored.createdAtMs,
    epoch,
    latestCheckpointId: latest,
    latestCheckpointEpoch: latestEpoch,
    idFloor,
    retainedCheckpointIds: retained,
    ...(restorePoint === undefined ? {} : { restorePoint }),
  };
}

function presentRecords(records: JobRecords): string[] {
  const named: [string, unknown][] = [
    ['an epoch', records.epoch],
    ['a latest checkpoint id', records.latest],
    ['an id floor', records.idFloor],
    ['a restore point', records.restorePoint],
  ];
  const present = named.filter(([, kv]) => kv !== undefined).map(([name]) => name);
  if (records.checkpointKeys.length > 0) present.push('checkpoints');
  return present;
}

/** Specs `specProblem` found valid and normalised: a spec object is not changed once checked. */
const checkedSpecs = new WeakSet<object>();

/**
 * What is wrong with a spec to store or stored, or undefined: it must be
 * valid within the ceilings any coordinator may be configured to (the
 * coordinator checks its own limits again) and normalised. A spec object
 * found right, or returned by `validateJobSpec` within the ceilings, is not
 * checked again (a job of 100,000 tasks took seconds of the event loop per
 * check).
 */
export function specProblem(spec: JobSpec): string | undefined {
  if (checkedSpecs.has(spec) || isNormalisedSpec(spec)) return undefined;
  let normalised: JobSpec;
  try {
    normalised = validateJobSpec(spec, CEILING_LIMITS);
  } catch (err) {
    return `holds an invalid spec: ${(err as Error).message}`;
  }
  if (!sameSpec(normalised, spec)) return 'holds a spec that differs from its normalised form';
  checkedSpecs.add(spec);
  return undefined;
}

/**
 * `isDeepStrictEqual(a, b)` for specs, with the tasks compared field by
 * field (a generic deep comparison of 100,000 tasks costs about a second).
 */
export function sameSpec(a: JobSpec, b: JobSpec): boolean {
  const { tasks: ta, ...restA } = a;
  const { tasks: tb, ...restB } = b;
  if (!isDeepStrictEqual(restA, restB)) return false;
  if (ta === undefined || tb === undefined) return ta === tb;
  if (ta.length !== tb.length) return false;
  for (let i = 0; i < ta.length; i += 1) if (!sameTask(ta[i]!, tb[i]!)) return false;
  return true;
}

type TaskOf = NonNullable<JobSpec['tasks']>[number];

function sameTask(a: TaskOf, b: TaskOf): boolean {
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    const [va, vb] = [(a as unknown as Record<string, unknown>)[key], (b as unknown as Record<string, unknown>)[key]];
    if (key === 'taskId') {
      if (va !== vb) return false;
    } else if (key === 'inputs' && Array.isArray(va) && Array.isArray(vb)) {
      if (va.length !== vb.length || va.some((input, i) => input !== vb[i])) return false;
    } else if (key === 'labels' && isPlainStrings(va) && isPlainStrings(vb)) {
      const entries = Object.keys(va);
      if (entries.length !== Object.keys(vb).length) return false;
      if (entries.some((k) => !Object.hasOwn(vb, k) || va[k] !== vb[k])) return false;
    } else if (!Object.hasOwn(b, key) || !isDeepStrictEqual(va, vb)) {
      return false;
    }
  }
  return true;
}

/** A plain object of own string values only (labels as decoded or normalised). */
function isPlainStrings(v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return false;
  if (Object.getOwnPropertySymbols(v).length > 0) return false;
  return Object.values(v).every((x) => typeof x === 'string');
}

/** The decoded StoredJob: a valid spec of this job, a run state, a creation time. */
export function checkStoredJob(kv: IKeyValue, jobId: string): StoredJob & { spec: JobSpec } {
  const key = kv.key.toString();
  const fail = (problem: string, cause?: unknown): CorruptRecordError => corruptJobRecord(jobId, key, problem, cause);
  const stored = decodeStored(storeCodecs().storedJob, kv.value, fail);
  const { spec } = stored;
  if (spec === null) throw fail('holds no spec');
  if (spec.jobId !== jobId) throw fail(`holds the spec of job ${preview(spec.jobId)}`);
  const problem = specProblem(spec);
  if (problem !== undefined) throw fail(problem);
  if (stored.state !== 'JOB_STATE_RUNNING' && stored.state !== 'JOB_STATE_CANCELED') {
    throw fail(`holds the run state ${preview(String(stored.state))}`);
  }
  if (!inRange(stored.createdAtMs, 0, MAX_TIME_MS)) throw fail(`holds the creation time ${stored.createdAtMs}`);
  return { ...stored, spec };
}

/**
 * The number in a padded counter at `key`: present, 20 decimal digits, at
 * least `min` and at most `MAX_STORED_COUNTER`.
 */
export function counterValue(kv: IKeyValue | undefined, key: string, jobId: string, min: number): number {
  if (kv === undefined) throw corruptJobRecord(jobId, key, 'is missing');
  const text = kv.value.toString('latin1');
  if (!PADDED_PATTERN.test(text)) {
    throw corruptJobRecord(jobId, key, `${preview(kv.value)} is not a 20-digit decimal number`);
  }
  const n = Number(text);
  if (!inRange(n, min, MAX_STORED_COUNTER)) {
    throw corruptJobRecord(
      jobId,
      key,
      `${text.replace(/^0+(?=\d)/, '')} is out of range (${min} to ${MAX_STORED_COUNTER})`,
    );
  }
  return n;
}

/** Ids of the checkpoints with a root, ascending; none above the latest, and the latest among them. */
function retainedIds(keys: KeyLayout, records: JobRecords, latest: number): number[] {
  const { jobId } = records;
  if (records.moreCheckpointKeys) {
    throw corruptJobRecord(jobId, keys.checkpoints(jobId), `holds more than ${MAX_CHECKPOINT_KEYS} keys`);
  }
  const retained: number[] = [];
  for (const kv of records.checkpointKeys) {
    const parsed = keys.parse(kv.key.toString());
    if (parsed?.kind === 'root' && parsed.jobId === jobId) retained.push(parsed.checkpointId);
  }
  retained.sort((a, b) => a - b);
  const highest = retained.at(-1) ?? 0;
  if (highest > latest) {
    const problem = `is retained, above the latest committed checkpoint ${latest}`;
    throw corruptJobRecord(jobId, keys.root(jobId, highest), problem);
  }
  if (latest > 0 && highest !== latest) {
    throw corruptJobRecord(jobId, keys.root(jobId, latest), `is missing: the latest checkpoint ${latest} has no root`);
  }
  return retained;
}

/** The epoch of the latest checkpoint from its summary; 0 when there is none. */
function latestCheckpointEpoch(keys: KeyLayout, records: JobRecords, latest: number, epoch: number): number {
  if (latest === 0) return 0;
  const { jobId } = records;
  const key = keys.summary(jobId, latest);
  const kv = records.latestSummary;
  if (kv === undefined)
    throw corruptJobRecord(jobId, key, `is missing: the latest checkpoint ${latest} has no summary`);
  const fail = (problem: string, cause?: unknown): CorruptRecordError => corruptJobRecord(jobId, key, problem, cause);
  const summary = decodeStored(storeCodecs().summary, kv.value, fail);
  const problem = summaryProblem(summary, jobId, latest);
  if (problem !== undefined) throw fail(problem);
  if (summary.epoch > epoch) throw fail(`holds epoch ${summary.epoch}, after the job's epoch ${epoch}`);
  return summary.epoch;
}

/** What the restore point is checked against. */
interface JobCounters {
  epoch: number;
  latest: number;
  latestEpoch: number;
  retained: readonly number[];
}

/**
 * The restore point, if any: a committed checkpoint and an epoch the job
 * has reached; while recoveries restore from it, its checkpoint is retained.
 */
function checkRestorePoint(keys: KeyLayout, records: JobRecords, job: JobCounters): RestorePoint | undefined {
  const kv = records.restorePoint;
  if (kv === undefined) return undefined;
  const { jobId } = records;
  const fail = (problem: string, cause?: unknown): CorruptRecordError =>
    corruptJobRecord(jobId, keys.restorePoint(jobId), problem, cause);
  const { checkpointId, epoch } = decodeStored(storeCodecs().restorePoint, kv.value, fail);
  if (!inRange(checkpointId, 1, job.latest)) {
    throw fail(`names checkpoint ${checkpointId}, not one up to the latest committed checkpoint ${job.latest}`);
  }
  if (!inRange(epoch, 1, job.epoch)) throw fail(`names epoch ${epoch}, not one up to the job's epoch ${job.epoch}`);
  const point = { checkpointId, epoch };
  // While it is in force, recoveries read its checkpoint's manifest.
  if (
    restorePointInForce({ checkpointId: job.latest, epoch: job.latestEpoch }, point) &&
    !job.retained.includes(checkpointId)
  ) {
    throw fail(`names checkpoint ${checkpointId}, which recoveries restore from but is not retained`);
  }
  return point;
}
