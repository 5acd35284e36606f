/**
 * Step 5 of a checkpoint: committing its manifest in one etcd transaction.
 *
 * A manifest whose encoding is at most `inlineManifestBytes` travels inline
 * in its root. A larger one is first written as content-addressed parts
 * (`<p>jobs/<job>/parts/<sha256>`), each one request, and the transaction
 * then commits the root that names them. The transaction is guarded by
 * `latest < id`, by `epoch == manifest.epoch`, by an optional leadership
 * key, and by the existence of every part it names; it puts the root, the
 * summary and `latest`, and deletes the subsumed checkpoints.
 *
 * A refusal says which guard failed: CHECKPOINT_COMPLETED (`latest >= id`),
 * STALE_EPOCH, UNKNOWN_JOB, `LeadershipLostError` (UNAVAILABLE, not
 * retryable: this coordinator must step down) when the leadership key
 * changed, or UNAVAILABLE (retryable) when a part was deleted meanwhile. The client retries requests whose reply was lost,
 * and callers retry UNAVAILABLE; so a commit that finds this very manifest
 * (same hash and epoch) already committed returns success instead of
 * CHECKPOINT_COMPLETED.
 *
 * A successful commit does not collect garbage: the parts of the subsumed
 * checkpoints stay until `collectGarbage`, which the coordinator calls
 * after each commit. A commit that fails after writing parts removes them
 * (through a collection, which keeps whatever a root names), so that a
 * refused commit leaves etcd as it found it; except when etcd is
 * unavailable, where the next collection removes them.
 */
import type { IRequestOp, ITxnRequest, ITxnResponse } from 'etcd3';
import { CkptError, hasReason } from '../core/errors.js';
import type { CommitRequest, CommitResult, LeaderGuard } from '../core/ports.js';
import { decodeStored, encodeForStore, storeCodecs } from './codecs.js';
import { mapConcurrent } from './concurrency.js';
import { deletePrefixOp, firstKv, getOp, putOp, valueIs, versionIs } from './etcd-ops.js';
import { collectGarbage } from './garbage.js';
import { corruptManifest } from './checkpoint-checks.js';
import { counterValue } from './job-checks.js';
import { guardCompares, guardReadOps as leaderReadOps, leadershipLost, validateGuard } from './leader-guard.js';
import { assertJobId, pad } from './keys.js';
import { inRange, MAX_STORED_COUNTER } from './record-limits.js';
import { encodeManifest } from './manifest-encoding.js';
import { layoutManifest, type ManifestChunk } from './manifest-parts.js';
import { assertTxnFits, txnBytes } from './request-limits.js';
import { statisticsPut } from './statistics.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import { getValue, putValue, sendTxn, type StoreContext } from './store-context.js';
import type { EtcdCallContext } from './translate-error.js';

/**
 * Fences a commit to the current leader: the commit happens only while
 * `key` (the leader's election key, a full etcd key) still has the create
 * revision the leader saw when it won.
 */
export type CommitGuard = LeaderGuard;

/** Everything a commit sends, prepared and size-checked before anything is sent. */
interface CommitPlan {
  jobId: string;
  checkpointId: number;
  epoch: number;
  guard: CommitGuard | undefined;
  manifestBytes: number;
  manifestSha256: string;
  /** Parts the root names, 0 when inline. */
  manifestParts: number;
  /** The distinct parts to write. */
  chunks: ManifestChunk[];
  txn: ITxnRequest;
  context: EtcdCallContext;
}

/** Why the guards of a commit do or do not hold. */
type Verdict = { kind: 'pass' } | { kind: 'latest-is-id' } | { kind: 'refuse'; error: CkptError };

/** Commits `request`; see the module comment for what it writes and promises. */
export async function commitCheckpoint(
  ctx: StoreContext,
  request: CommitRequest,
  guard?: CommitGuard,
): Promise<CommitResult> {
  const plan = await planCommit(ctx, request, guard);
  if (plan.chunks.length === 0) return sendCommit(ctx, plan);
  // Check the guards before writing parts that a refused commit would orphan.
  const precheck = await sendTxn(ctx, { success: guardReadOps(ctx, plan) }, plan.context);
  const earlier = await settleVerdict(ctx, plan, precheck);
  if (earlier !== undefined) return earlier;
  try {
    await writeParts(ctx, plan);
    return await sendCommit(ctx, plan);
  } catch (err) {
    // While etcd is unavailable a cleanup would only wait for it too; the
    // next collection removes the parts then.
    if (!(hasReason(err, 'UNAVAILABLE') && err.retryable)) await removeOwnParts(ctx, plan);
    throw err;
  }
}

/** Sends the commit transaction; a refusal is settled by `settleRefusal`. */
async function sendCommit(ctx: StoreContext, plan: CommitPlan): Promise<CommitResult> {
  const response = await sendTxn(ctx, plan.txn, plan.context);
  if (!response.succeeded) return settleRefusal(ctx, plan, response);
  const { jobId, checkpointId, manifestBytes, manifestParts } = plan;
  ctx.logger.debug({ jobId, checkpointId, manifestBytes, manifestParts }, 'checkpoint committed');
  return commitResult(plan, response.header.revision);
}

/**
 * After a refused commit transaction: the result of an earlier identical
 * commit, or else the refusal.
 */
async function settleRefusal(ctx: StoreContext, plan: CommitPlan, response: ITxnResponse): Promise<CommitResult> {
  const earlier = await settleVerdict(ctx, plan, response);
  if (earlier !== undefined) return earlier;
  // Every other guard held, so a part the root names was deleted after it was written.
  const message = `parts of the manifest of checkpoint ${plan.checkpointId} were deleted while it was committed`;
  throw new CkptError('UNAVAILABLE', message, { jobId: plan.jobId, checkpointId: plan.checkpointId, retryable: true });
}

/** Validates and encodes the request and builds the transaction; sends nothing. */
async function planCommit(
  ctx: StoreContext,
  request: CommitRequest,
  guard: CommitGuard | undefined,
): Promise<CommitPlan> {
  const { manifest } = request;
  const jobId = manifest.jobId;
  const checkpointId = manifest.checkpointId;
  const epoch = manifest.epoch;
  validateRequest(request, guard);
  const codecs = storeCodecs();
  const ids = { jobId, checkpointId, epoch };
  const encoded = encodeForStore({ encode: encodeManifest }, manifest, 'manifest', ids);
  if (encoded.length > ctx.options.maxManifestBytes) {
    const message = `manifest of checkpoint ${checkpointId} of job ${jobId} is ${encoded.length} bytes, more than maxManifestBytes (${ctx.options.maxManifestBytes}); nothing was sent`;
    throw new CkptError('OVERSIZED', message, ids);
  }
  const layout = await layoutManifest(encoded, { checkpointId, epoch }, ctx.options);
  assertDistinctParts(layout.chunks, ids);
  const summary = { ...request.summary, manifestBytes: encoded.length, manifestParts: layout.chunks.length };
  const root = encodeForStore(codecs.manifestRoot, layout.root, 'manifest root', ids);
  const plan: CommitPlan = {
    jobId,
    checkpointId,
    epoch,
    guard,
    manifestBytes: encoded.length,
    manifestSha256: layout.sha256,
    manifestParts: layout.chunks.length,
    chunks: layout.chunks,
    txn: {},
    context: { operation: `commit checkpoint ${checkpointId} of job ${jobId}`, ...ids },
  };
  plan.txn = buildCommitTxn(ctx, plan, root, encodeForStore(codecs.summary, summary, 'checkpoint summary', ids), {
    ...request,
    statistics: request.statistics && withStoredSummary(request.statistics, summary),
  });
  assertTxnFits(plan.txn, ctx.options, plan.context);
  return plan;
}

function buildCommitTxn(
  ctx: StoreContext,
  plan: CommitPlan,
  root: Uint8Array,
  summary: Uint8Array,
  request: CommitRequest,
): ITxnRequest {
  const { keys } = ctx;
  const { jobId, checkpointId } = plan;
  const compare = [
    valueIs(keys.latest(jobId), 'Less', pad(checkpointId)),
    valueIs(keys.epoch(jobId), 'Equal', pad(plan.epoch)),
  ];
  compare.push(...guardCompares(plan.guard));
  for (const chunk of plan.chunks) compare.push(versionIs(keys.part(jobId, chunk.sha256), 'Greater', 0));
  const success: IRequestOp[] = [
    putOp(keys.root(jobId, checkpointId), Buffer.from(root)),
    putOp(keys.summary(jobId, checkpointId), Buffer.from(summary)),
    putOp(keys.latest(jobId), pad(checkpointId)),
  ];
  for (const id of new Set(request.subsumedCheckpointIds)) success.push(deletePrefixOp(keys.checkpoint(jobId, id)));
  const txn = { compare, success, failure: guardReadOps(ctx, plan) };
  if (request.statistics !== undefined) {
    const ops = Math.max(compare.length, success.length);
    const put = statisticsPut(ctx, jobId, request.statistics, { bytes: txnBytes(txn), ops });
    if (put !== undefined) success.push(put);
  }
  return txn;
}

/** The statistics with this checkpoint's summary as stored (with its manifest's size). */
function withStoredSummary(
  stats: StoredCheckpointStatistics__Output,
  summary: CheckpointSummary__Output,
): StoredCheckpointStatistics__Output {
  const same = (s: CheckpointSummary__Output | null): boolean => s?.checkpointId === summary.checkpointId;
  return {
    ...stats,
    latestCompleted: same(stats.latestCompleted) ? summary : stats.latestCompleted,
    history: stats.history.map((r) => (same(r.summary) ? { ...r, summary } : r)),
  };
}

function validateRequest(request: CommitRequest, guard: CommitGuard | undefined): void {
  const { manifest, summary } = request;
  const jobId = manifest.jobId;
  assertJobId(jobId);
  const ids = { jobId, checkpointId: manifest.checkpointId, epoch: manifest.epoch };
  const refuse = (problem: string): never => {
    throw new CkptError(
      'MALFORMED',
      `cannot commit checkpoint ${manifest.checkpointId} of job ${jobId}: ${problem}`,
      ids,
    );
  };
  if (!inRange(manifest.checkpointId, 1, MAX_STORED_COUNTER)) refuse(`the id must be from 1 to ${MAX_STORED_COUNTER}`);
  if (!inRange(manifest.epoch, 1, MAX_STORED_COUNTER)) refuse(`the epoch must be from 1 to ${MAX_STORED_COUNTER}`);
  if (summary.jobId !== jobId || summary.checkpointId !== manifest.checkpointId || summary.epoch !== manifest.epoch) {
    refuse('the summary names another job, checkpoint or epoch than the manifest');
  }
  if (summary.state !== 'CHECKPOINT_STATE_COMPLETED') refuse(`the summary's state is ${summary.state}, not COMPLETED`);
  for (const id of request.subsumedCheckpointIds) {
    if (!Number.isSafeInteger(id) || id < 1 || id >= manifest.checkpointId) {
      refuse(`subsumed checkpoint ${id} is not an earlier checkpoint`);
    }
  }
  validateGuard(guard, ids);
}

/**
 * Readers refuse a root that names a part twice, so a manifest whose
 * stored bytes repeat a whole part cannot be stored. Compressed bytes
 * practically never do; the encoding may, when a task repeats one shared
 * piece thousands of times and compression is off.
 */
function assertDistinctParts(chunks: ManifestChunk[], ids: { jobId: string; checkpointId: number }): void {
  const seen = new Set<string>();
  for (const chunk of chunks) {
    if (seen.has(chunk.sha256)) {
      const message = `manifest of checkpoint ${ids.checkpointId} of job ${ids.jobId} repeats part ${chunk.sha256}; a root cannot name a part twice`;
      throw new CkptError('MALFORMED', message, ids);
    }
    seen.add(chunk.sha256);
  }
}

/** Reads of the guarded keys: latest, epoch and the leadership key. */
function guardReadOps(ctx: StoreContext, plan: CommitPlan): IRequestOp[] {
  return [getOp(ctx.keys.latest(plan.jobId)), getOp(ctx.keys.epoch(plan.jobId)), ...leaderReadOps(plan.guard)];
}

/**
 * Judges the responses of `guardReadOps`: undefined when every guard holds;
 * the earlier result when this very checkpoint is already committed (a
 * retried request whose first attempt went through); else throws the
 * refusal.
 */
async function settleVerdict(
  ctx: StoreContext,
  plan: CommitPlan,
  response: ITxnResponse,
): Promise<CommitResult | undefined> {
  const verdict = judgeGuards(plan, response);
  if (verdict.kind === 'pass') return undefined;
  if (verdict.kind === 'refuse') throw verdict.error;
  const earlier = await findEarlierCommit(ctx, plan, response.header.revision);
  if (earlier !== undefined) return earlier;
  throw completed(plan, plan.checkpointId);
}

function judgeGuards(plan: CommitPlan, response: ITxnResponse): Verdict {
  const { jobId, checkpointId } = plan;
  const [latestResponse, epochResponse, guardResponse] = response.responses;
  const latestKv = firstKv(latestResponse);
  const epochKv = firstKv(epochResponse);
  if (latestKv === undefined || epochKv === undefined) {
    return {
      kind: 'refuse',
      error: new CkptError('UNKNOWN_JOB', `job ${jobId} does not exist`, { jobId, checkpointId }),
    };
  }
  const latest = counterValue(latestKv, latestKv.key.toString(), jobId, 0);
  // An earlier attempt of this very commit may have gone through while this coordinator still led.
  if (latest === checkpointId) return { kind: 'latest-is-id' };
  if (plan.guard !== undefined && firstKv(guardResponse)?.create_revision !== plan.guard.createRevision) {
    return { kind: 'refuse', error: leadershipLost(plan.guard, { jobId, checkpointId }) };
  }
  if (latest > checkpointId) return { kind: 'refuse', error: completed(plan, latest) };
  const epoch = counterValue(epochKv, epochKv.key.toString(), jobId, 1);
  if (epoch !== plan.epoch) {
    const message = `job ${jobId} is in epoch ${epoch}; checkpoint ${checkpointId} of epoch ${plan.epoch} cannot be committed`;
    return { kind: 'refuse', error: new CkptError('STALE_EPOCH', message, { jobId, checkpointId, epoch: plan.epoch }) };
  }
  return { kind: 'pass' };
}

function completed(plan: CommitPlan, latest: number): CkptError {
  const message = `job ${plan.jobId} has committed checkpoint ${latest}; checkpoint ${plan.checkpointId} cannot be committed`;
  return new CkptError('CHECKPOINT_COMPLETED', message, { jobId: plan.jobId, checkpointId: plan.checkpointId });
}

/** The result of an earlier, identical commit of this checkpoint, if there was one. */
async function findEarlierCommit(
  ctx: StoreContext,
  plan: CommitPlan,
  revision: string,
): Promise<CommitResult | undefined> {
  const key = ctx.keys.root(plan.jobId, plan.checkpointId);
  const { kv } = await getValue(ctx, key, plan.context, revision);
  if (kv === undefined) return undefined;
  const origin = {
    jobId: plan.jobId,
    checkpointId: plan.checkpointId,
    rootKey: key,
    partKey: (sha256: string) => ctx.keys.part(plan.jobId, sha256),
  };
  const root = decodeStored(storeCodecs().manifestRoot, kv.value, (problem, cause) =>
    corruptManifest(origin, key, problem, cause),
  );
  if (root.manifestSha256 !== plan.manifestSha256 || root.epoch !== plan.epoch) return undefined;
  ctx.logger.info(
    { jobId: plan.jobId, checkpointId: plan.checkpointId },
    'checkpoint was already committed by an earlier attempt',
  );
  return commitResult(plan, kv.mod_revision);
}

function commitResult(plan: CommitPlan, revision: string): CommitResult {
  return { manifestBytes: plan.manifestBytes, manifestParts: plan.manifestParts, revision };
}

async function writeParts(ctx: StoreContext, plan: CommitPlan): Promise<void> {
  await mapConcurrent(plan.chunks, ctx.options.partConcurrency, (chunk) =>
    putValue(ctx, ctx.keys.part(plan.jobId, chunk.sha256), chunk.bytes, plan.context),
  );
}

/** Best effort: a failure here leaves orphans that the next collection removes. */
async function removeOwnParts(ctx: StoreContext, plan: CommitPlan): Promise<void> {
  try {
    await collectGarbage(ctx, plan.jobId);
  } catch (err) {
    ctx.logger.warn(
      { jobId: plan.jobId, checkpointId: plan.checkpointId, err },
      'could not remove the parts of a refused commit',
    );
  }
}
