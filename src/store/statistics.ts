/**
 * A job's checkpoint statistics in etcd (`<p>jobs/<job>/stats`, a
 * `StoredCheckpointStatistics`): put in each commit transaction, and by
 * `putStatistics` for aborted checkpoints and recoveries in between.
 *
 * The record is informational. One that cannot be read is logged and
 * treated as absent (the next write replaces it); it never quarantines the
 * job. A record is trimmed to fit its byte budget before it is written:
 * first the per-task figures of the oldest checkpoints go, then the oldest
 * checkpoints.
 */
import type { IRequestOp } from 'etcd3';
import { CkptError } from '../core/errors.js';
import type { LeaderGuard } from '../core/ports.js';
import type { CheckpointRecord__Output } from '../gen/ckpt/v1/CheckpointRecord.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import { codec, type Codec } from '../proto/index.js';
import { getOp, putOp, versionIs } from './etcd-ops.js';
import { assertGuardHeld, guardCompares, guardReadOps, validateGuard } from './leader-guard.js';
import { inRange, MAX_STORED_COUNTER, MAX_TIME_MS } from './record-limits.js';
import { OP_OVERHEAD_BYTES } from './request-limits.js';
import { getValue, sendTxn, type StoreContext } from './store-context.js';

/**
 * The most bytes a statistics record takes: a commit transaction must still
 * carry its manifest, and etcd keeps every version of the record until it
 * compacts its history.
 */
export const MAX_STATISTICS_BYTES = 24 * 1024;

/** Most history entries a record read back may hold; more means it is not ours. */
const MAX_STORED_HISTORY = 10_000;

type StatsCodec = Codec<StoredCheckpointStatistics__Output, StoredCheckpointStatistics__Output>;
let codecs: { stats: StatsCodec; record: Codec<CheckpointRecord__Output, CheckpointRecord__Output> } | undefined;

function statsCodecs(): NonNullable<typeof codecs> {
  codecs ??= {
    stats: codec<StoredCheckpointStatistics__Output, StoredCheckpointStatistics__Output>('StoredCheckpointStatistics'),
    record: codec<CheckpointRecord__Output, CheckpointRecord__Output>('CheckpointRecord'),
  };
  return codecs;
}

/** `StoredCheckpointStatistics.history` (field 8, length-delimited) as its tag byte. */
const HISTORY_TAG = (8 << 3) | 2;
/**
 * The fewest bytes one task's figures take in a record: its tag and length
 * (2), and its task id's tag and length (2) with at least one character.
 */
const MIN_TASK_FIGURE_BYTES = 5;

/**
 * Encodings of the records of a history, with and without their per-task
 * figures, each made when first needed. A record never changes once it is
 * in a history (the statistics replace records, never edit them), and the
 * next commit's history holds the same records but one or two: each is
 * encoded once, not at every commit.
 */
const recordEncodings = new WeakMap<CheckpointRecord__Output, { full?: Uint8Array; bare?: Uint8Array }>();

function cachedEncodings(r: CheckpointRecord__Output): { full?: Uint8Array; bare?: Uint8Array } {
  let cached = recordEncodings.get(r);
  if (cached === undefined) {
    cached = {};
    recordEncodings.set(r, cached);
  }
  return cached;
}

/** The record without its per-task figures. */
function bareBytes(r: CheckpointRecord__Output): Uint8Array {
  const cached = cachedEncodings(r);
  cached.bare ??= statsCodecs().record.encode(r.tasks.length === 0 ? r : { ...r, tasks: [] });
  if (r.tasks.length === 0) cached.full = cached.bare;
  return cached.bare;
}

/** The whole record; undefined when its figures alone cannot fit `maxBytes` (it is then not encoded whole). */
function fullBytes(r: CheckpointRecord__Output, maxBytes = Number.POSITIVE_INFINITY): Uint8Array | undefined {
  const cached = cachedEncodings(r);
  if (cached.full === undefined && r.tasks.length * MIN_TASK_FIGURE_BYTES > maxBytes) return undefined;
  cached.full ??= statsCodecs().record.encode(r);
  return cached.full;
}

/** Bytes of a varint. */
function varintBytes(n: number): number {
  let bytes = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) bytes += 1;
  return bytes;
}

/** `bytes` as one `history` field: tag, length, bytes. */
function historyFieldBytes(bytes: Uint8Array): number {
  return 1 + varintBytes(bytes.length) + bytes.length;
}

function writeHistoryField(out: Uint8Array, at: number, bytes: Uint8Array): number {
  let offset = at;
  out[offset++] = HISTORY_TAG;
  let n = bytes.length;
  while (n >= 0x80) {
    out[offset++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[offset++] = n;
  out.set(bytes, offset);
  return offset + bytes.length;
}

/**
 * `stats` encoded in at most `maxBytes`, trimmed as the module comment
 * says; undefined when not even the record without history fits. The
 * record without its history is encoded, and the history's records
 * (encoded once each, `recordEncodings`) follow as fields of their own:
 * protobuf readers take fields in any order and repeated ones in the order
 * they come.
 */
export function encodeStatistics(stats: StoredCheckpointStatistics__Output, maxBytes: number): Uint8Array | undefined {
  const base = statsCodecs().stats.encode({ ...stats, history: [] });
  const records = stats.history;
  const chosen: Uint8Array[] = records.map((r) => fullBytes(r, maxBytes) ?? bareBytes(r));
  let total = base.length + chosen.reduce((sum, bytes) => sum + historyFieldBytes(bytes), 0);
  // First the per-task figures of the oldest checkpoints go, then the oldest checkpoints.
  for (let i = records.length - 1; i >= 0 && total > maxBytes; i -= 1) {
    const bare = bareBytes(records[i]!);
    total -= historyFieldBytes(chosen[i]!) - historyFieldBytes(bare);
    chosen[i] = bare;
  }
  let kept = chosen.length;
  while (kept > 0 && total > maxBytes) {
    kept -= 1;
    total -= historyFieldBytes(chosen[kept]!);
  }
  if (total > maxBytes) return undefined;
  const out = new Uint8Array(total);
  out.set(base, 0);
  let offset = base.length;
  for (let i = 0; i < kept; i += 1) offset = writeHistoryField(out, offset, chosen[i]!);
  return out;
}

/**
 * The put of `stats` for a transaction that already takes `txnBytes`
 * bytes and `ops` operations; none when it cannot fit.
 */
export function statisticsPut(
  ctx: StoreContext,
  jobId: string,
  stats: StoredCheckpointStatistics__Output,
  txn: { bytes: number; ops: number },
): IRequestOp | undefined {
  if (txn.ops >= ctx.options.maxTxnOps) return undefined;
  const key = ctx.keys.stats(jobId);
  const room = ctx.options.maxRequestBytes - txn.bytes - OP_OVERHEAD_BYTES - Buffer.byteLength(key);
  const bytes = encodeStatistics(stats, Math.min(MAX_STATISTICS_BYTES, room));
  if (bytes === undefined) {
    ctx.logger.warn({ jobId }, 'checkpoint statistics do not fit the transaction; not written this time');
    return undefined;
  }
  return putOp(key, Buffer.from(bytes));
}

/** The job's statistics; undefined when there are none or they cannot be read (logged). */
export async function readStatistics(
  ctx: StoreContext,
  jobId: string,
): Promise<StoredCheckpointStatistics__Output | undefined> {
  const key = ctx.keys.stats(jobId);
  const { kv } = await getValue(ctx, key, { operation: 'read checkpoint statistics', jobId });
  if (kv === undefined) return undefined;
  try {
    const stats = statsCodecs().stats.decode(kv.value);
    const problem = statisticsProblem(stats);
    if (problem === undefined) return stats;
    ctx.logger.warn({ jobId, key, problem }, 'checkpoint statistics record is invalid; counting starts anew');
  } catch (err) {
    ctx.logger.warn({ jobId, key, err }, 'checkpoint statistics record does not decode; counting starts anew');
  }
  return undefined;
}

/** Why a decoded record cannot be ours, or undefined. */
export function statisticsProblem(stats: StoredCheckpointStatistics__Output): string | undefined {
  for (const name of ['completed', 'failed', 'restored'] as const) {
    if (!inRange(stats[name], 0, MAX_STORED_COUNTER)) return `${name} is ${stats[name]}`;
  }
  if (!inRange(stats.countingSinceMs, 0, MAX_TIME_MS)) return `counting_since_ms is ${stats.countingSinceMs}`;
  if (stats.history.length > MAX_STORED_HISTORY) return `${stats.history.length} history entries`;
  for (const r of stats.history) {
    const s = r.summary;
    if (s === null || !inRange(s.checkpointId, 1, MAX_STORED_COUNTER)) return 'a history entry has no valid checkpoint';
    if (s.state !== 'CHECKPOINT_STATE_COMPLETED' && s.state !== 'CHECKPOINT_STATE_ABORTED')
      return `history entry ${s.checkpointId} is ${s.state}`;
  }
  return undefined;
}

/**
 * Puts the job's statistics, guarded by the leadership and by the job
 * existing (its epoch key); UNKNOWN_JOB when it does not.
 */
export async function putStatistics(
  ctx: StoreContext,
  jobId: string,
  stats: StoredCheckpointStatistics__Output,
  guard?: LeaderGuard,
): Promise<void> {
  validateGuard(guard, { jobId });
  const compare = [versionIs(ctx.keys.epoch(jobId), 'Greater', 0), ...guardCompares(guard)];
  const put = statisticsPut(ctx, jobId, stats, { bytes: 1024, ops: 0 });
  if (put === undefined) return;
  const response = await sendTxn(
    ctx,
    { compare, success: [put], failure: guardReadOps(guard).concat(getOp(ctx.keys.epoch(jobId), true)) },
    { operation: 'write checkpoint statistics', jobId },
  );
  if (response.succeeded) return;
  assertGuardHeld(guard, response.responses[0], { jobId });
  throw new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId });
}
