/**
 * One sweep of a job's state: the pieces in the buckets its handles named
 * are listed and judged (`garbageReason`), and, unless it is a dry run,
 * deleted; the job's workers are handed what is known of their file
 * pieces and asked to list theirs, which they report in `StateListing`s.
 * A canceled job past its retention loses every piece that no other job
 * names. The report says what went, or would go, and what could not be
 * reached. Once per sweep, not per job, each bucket loses the chunks that
 * killed uploads left (`sweepStrayChunks`).
 */
import type { StatePieces, StrayChunkPurge } from '../core/ports.js';
import type { Logger } from '../log/index.js';
import type { HandleLike, SharedStateRegistry } from '../core/shared-state-registry.js';
import { garbageReason, type GarbageReason, type SweepScope } from '../core/state-sweep.js';
import { CkptError } from '../core/errors.js';
import type { StateCleanup } from './state-cleanup.js';
import { placeOf } from './state-places.js';

/** One piece that went, or would go. */
export interface GarbageFound {
  uri: string;
  reason: GarbageReason;
  /** As the store tells it; 0 when unknown. */
  sizeBytes: number;
  deleted: boolean;
  /** Why the deletion failed; empty otherwise. */
  error: string;
}

/** What a sweep of one job found and did. */
export interface GarbageReport {
  pieces: GarbageFound[];
  /** What could not be examined or reached, for people. */
  unreachable: string[];
  /** A canceled job whose state is still kept: when its retention ends; 0 otherwise. */
  canceledStateKeptUntilMs: number;
  /** A canceled job's state is gone from every bucket (file pieces aside). */
  canceledStateGone: boolean;
}

/** What a sweep works with. */
export interface SweepContext {
  cleanup: StateCleanup;
  registry: SharedStateRegistry;
  pieces: StatePieces | undefined;
  pinned(jobId: string): Promise<readonly HandleLike[]>;
}

/** Sweeps one job; see the module comment. */
export async function sweepJob(ctx: SweepContext, jobId: string, dryRun: boolean): Promise<GarbageReport> {
  const { cleanup, registry } = ctx;
  const report: GarbageReport = {
    pieces: [],
    unreachable: [],
    canceledStateKeptUntilMs: cleanup.canceledStateKeptUntil(jobId),
    canceledStateGone: false,
  };
  if (!cleanup.complete) {
    report.unreachable.push('retained manifests could not all be read from etcd: nothing is deleted until they are');
    return report;
  }
  if (!dryRun) cleanup.release(jobId, registry.pin(jobId, await ctx.pinned(jobId)));
  const scope = cleanup.scope(jobId);
  if (scope === undefined) return report;
  const gone = new Set(scope.canceledStateDue ? registry.heldOnlyBy(jobId) : []);
  const judged: SweepScope = { ...scope, isLive: (uri) => !gone.has(uri) && scope.isLive(uri) };
  const bucketsClean = await sweepBuckets(ctx, judged, dryRun, report);
  sweepFiles(ctx, judged, [...gone], dryRun, report);
  if (judged.canceledStateDue && !dryRun) {
    registry.forgetJob(jobId);
    report.canceledStateGone = bucketsClean;
  }
  return report;
}

/** Lists, judges and deletes the job's pieces in each bucket; true when every one answered and every deletion went. */
async function sweepBuckets(
  ctx: SweepContext,
  scope: SweepScope,
  dryRun: boolean,
  report: GarbageReport,
): Promise<boolean> {
  const { jobId } = scope;
  const buckets = [...ctx.cleanup.placesOf(jobId).buckets];
  if (ctx.pieces === undefined) {
    if (buckets.length > 0)
      report.unreachable.push(`buckets ${buckets.join(', ')}: the coordinator reaches no object store`);
    return buckets.length === 0;
  }
  let clean = true;
  for (const bucket of buckets) {
    let found: GarbageFound[];
    try {
      found = judgeListing(await ctx.pieces.list(bucket, jobId), scope);
    } catch (err) {
      report.unreachable.push(`bucket ${bucket}: ${CkptError.from(err).message}`);
      clean = false;
      continue;
    }
    if (!dryRun && found.length > 0) {
      const failed = await ctx.cleanup.deleteObjects(
        jobId,
        bucket,
        found.map((f) => f.uri),
      );
      for (const f of found) {
        f.error = failed.get(f.uri) ?? '';
        f.deleted = f.error === '';
      }
      if (failed.size > 0) clean = false;
    }
    report.pieces.push(...found);
  }
  return clean;
}

function judgeListing(
  listed: ReadonlyArray<{ uri: string; modifiedAtMs: number; sizeBytes: number }>,
  scope: SweepScope,
): GarbageFound[] {
  const found: GarbageFound[] = [];
  for (const piece of listed) {
    const place = placeOf(piece.uri);
    if (place?.kind !== 'nats-obj') continue;
    const at = {
      uri: piece.uri,
      jobId: place.jobId,
      checkpointId: place.checkpointId,
      modifiedAtMs: piece.modifiedAtMs,
    };
    const reason = garbageReason(at, scope);
    if (reason !== undefined)
      found.push({ uri: piece.uri, reason, sizeBytes: piece.sizeBytes, deleted: false, error: '' });
  }
  return found;
}

/**
 * File pieces live on the workers' machines: what the coordinator knows is
 * released goes to the attached workers with a request to list the rest.
 */
function sweepFiles(
  ctx: SweepContext,
  scope: SweepScope,
  gone: readonly string[],
  dryRun: boolean,
  report: GarbageReport,
): void {
  const { jobId } = scope;
  if (!ctx.cleanup.placesOf(jobId).files) return;
  const reason: GarbageReason = scope.canceledStateDue ? 'canceled' : 'subsumed';
  const known = [...ctx.cleanup.releasedOf(jobId), ...gone].filter((uri) => placeOf(uri)?.kind === 'file');
  for (const uri of known) report.pieces.push({ uri, reason, sizeBytes: 0, deleted: false, error: '' });
  if (dryRun) {
    report.unreachable.push(
      `file pieces of job ${jobId} live on its workers' machines: a dry run names only those the coordinator knows were released`,
    );
    return;
  }
  const workers = ctx.cleanup.sendDiscard(jobId, known);
  ctx.cleanup.requestListings(jobId);
  report.unreachable.push(
    workers === 0
      ? `file pieces of job ${jobId} live on its workers' machines and no worker of the job is attached` +
          `${scope.canceledStateDue ? " (a canceled job's workers are gone)" : ''}: they stay in the workers' directories`
      : `file pieces of job ${jobId} are deleted by its ${workers} attached workers, which were asked to list theirs`,
  );
}

/** Most chunk subjects one sweep inspects for stray chunks, over all its buckets. */
export const MAX_STRAY_CHUNK_SUBJECTS_PER_SWEEP = 1000;

/** What a sweep of stray chunks works with. */
export interface StrayChunkSweep {
  pieces: StatePieces | undefined;
  /** Each swept once. */
  buckets: ReadonlySet<string>;
  orphanGraceMs: number;
  nowMs: number;
  log: Logger;
}

/**
 * Purges the stray chunks of each bucket (`StatePieces.purgeStrayChunks`)
 * within one bound of subjects inspected. Never rejects: a bucket that
 * fails is logged and the next one swept.
 */
export async function sweepStrayChunks(sweep: StrayChunkSweep): Promise<void> {
  const { pieces, log } = sweep;
  if (pieces === undefined) return;
  let budget = MAX_STRAY_CHUNK_SUBJECTS_PER_SWEEP;
  for (const bucket of sweep.buckets) {
    if (budget <= 0) break;
    try {
      const limits = { graceMs: sweep.orphanGraceMs, nowMs: sweep.nowMs, maxSubjects: budget };
      const purge = await pieces.purgeStrayChunks(bucket, limits);
      budget -= purge.inspected;
      logPurge(log, bucket, purge);
    } catch (err) {
      log.warn({ err, bucket }, 'stray chunks not swept; the next sweep tries again');
    }
  }
}

function logPurge(log: Logger, bucket: string, purge: StrayChunkPurge): void {
  const { subjects, chunks, bytes, young, deferred, failed } = purge;
  if (subjects > 0) log.info({ bucket, subjects, chunks, bytes, young, deferred }, 'stray chunks purged');
  else if (deferred > 0) log.info({ bucket, young, deferred }, 'stray chunks left for the next sweep');
  if (failed.length > 0)
    log.warn(
      { bucket, failed: failed.length, first: failed[0] },
      'stray chunks not purged; the next sweep tries again',
    );
}
