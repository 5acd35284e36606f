/**
 * One job's commits: each fully acknowledged checkpoint is committed to etcd
 * in one guarded transaction, one at a time and in the order the
 * acknowledgements completed. A commit whose answer was lost is looked up
 * in etcd before it counts as failed, and manifest parts that no committed
 * root names any more are collected after commits that may have left some.
 * A checkpoint that builds on a shared piece nothing retained names any
 * more is refused before its commit (see `commit`); a committed one is
 * handed to the state cleanup with what retention dropped.
 */
import type { AbortCause, Checkpoint } from '../core/checkpoint.js';
import { CkptError, hasReason, LeadershipLostError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore, LeaderGuard } from '../core/ports.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { Logger } from '../log/index.js';
import type { JobBroadcasts } from './job-broadcasts.js';
import type { CommitStatistics } from './job-statistics.js';

/** What the commits tell the state cleanup, and ask it. */
export interface CommitState {
  /** Shared pieces the snapshots build on that nothing retained names any more. */
  releasedShared(tasks: Manifest__Output['tasks']): string[];
  /** A checkpoint committed; retention dropped `subsumed`. */
  committed(manifest: Manifest__Output, subsumed: readonly number[]): void;
}

/** How many released uris an abort message names. */
const NAMED_RELEASED_URIS = 3;

/** The size of a committed manifest. */
interface Committed {
  manifestBytes: number;
  manifestParts: number;
}

/** What a job's commit pipeline needs from its runtime. */
export interface CommitPipelineDeps {
  tracker: JobTracker;
  store: CheckpointStore;
  /** Fences every commit to this coordinator's leadership; none when it runs alone. */
  guard: LeaderGuard | undefined;
  now: () => number;
  /** The job's logger. */
  log: Logger;
  broadcasts: JobBroadcasts;
  state: CommitState;
  /** A guarded write was refused: this coordinator is no longer the leader. */
  onLeadershipLost: (err: LeadershipLostError) => void;
  /** Aborts a pending checkpoint and tells the tasks. */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string): void;
  /** A checkpoint finished: watchers and waiting callers hear of it; `committedWith`, the statistics its commit stored. */
  finished(checkpoint: Checkpoint, committedWith?: CommitStatistics): void;
  /** The job's checkpoint statistics as they will be once `checkpoint` completes, to store with its commit. */
  statisticsFor(summary: CheckpointSummary__Output, checkpoint: Checkpoint): CommitStatistics;
  /** Sets the job's timer again (a commit may free a slot for the next checkpoint). */
  arm(): void;
  /** A checkpoint's commit to etcd took `durationMs`. */
  observeCommit?(durationMs: number): void;
}

/** The commits of one job, in order. */
export class CommitPipeline {
  private readonly deps: CommitPipelineDeps;
  private chain: Promise<void> = Promise.resolve();
  /**
   * Whether etcd may hold manifest parts of the job. False once a
   * collection left none; a commit that wrote parts, or failed after
   * perhaps writing some, sets it again. While false, commits of inline
   * manifests skip the collection (a listing of the job's keys).
   */
  private partsMayExist = true;

  constructor(deps: CommitPipelineDeps) {
    this.deps = deps;
  }

  /** Marks a fully acknowledged checkpoint committing and queues its commit behind those before it. */
  enqueue(checkpoint: Checkpoint): void {
    checkpoint.beginCommit();
    this.chain = this.chain.then(() => this.commit(checkpoint));
  }

  /** Runs `write` after the commits and writes queued so far, before those queued later. */
  inOrder(write: () => Promise<void>): void {
    this.chain = this.chain.then(write);
  }

  /** Resolves when the commits and collections queued so far have run. */
  settled(): Promise<void> {
    return this.chain;
  }

  private async commit(checkpoint: Checkpoint): Promise<void> {
    if (checkpoint.status !== 'PENDING') return;
    const { tracker, store, guard } = this.deps;
    const later = tracker.completedBefore(checkpoint);
    if (later !== undefined) {
      this.deps.abort(checkpoint, 'ABORT_REASON_SUBSUMED', `checkpoint ${later} completed first`);
      return;
    }
    const now = this.deps.now();
    const manifest = checkpoint.manifest(now);
    if (this.refuseReleasedBase(checkpoint, manifest)) return;
    const subsumed = tracker.subsumedBy(checkpoint.id);
    const summary = { ...checkpoint.summary(), state: 'CHECKPOINT_STATE_COMPLETED' as const, finishedAtMs: now };
    const stats = this.deps.statisticsFor(summary, checkpoint);
    let result: Committed;
    try {
      result = await store.commit(
        { manifest, summary, subsumedCheckpointIds: subsumed, statistics: stats.statistics },
        guard,
      );
    } catch (err) {
      this.partsMayExist = true;
      if (err instanceof LeadershipLostError) {
        this.deps.onLeadershipLost(err);
        this.deps.abort(checkpoint, 'ABORT_REASON_COMMIT_FAILED', err.message);
        return;
      }
      const committed = await this.resolveUnknownOutcome(checkpoint, err);
      if (committed === undefined) {
        this.deps.abort(checkpoint, 'ABORT_REASON_COMMIT_FAILED', CkptError.from(err).message);
        return;
      }
      result = committed;
    }
    this.deps.observeCommit?.(this.deps.now() - now);
    this.deps.state.committed(manifest, subsumed);
    this.completeCommitted(checkpoint, now, result, subsumed.length > 0, stats);
  }

  /**
   * A checkpoint whose tasks build on shared pieces that no retained
   * checkpoint or savepoint names any more cannot be committed: retention
   * released those pieces, and they may be deleted already. It aborts with
   * COMMIT_FAILED (the coordinator refused it; no task declined), which
   * counts towards the tolerable failures: tasks upload such pieces anew,
   * and a job that keeps failing recovers from a retained checkpoint.
   */
  private refuseReleasedBase(checkpoint: Checkpoint, manifest: Manifest__Output): boolean {
    const released = this.deps.state.releasedShared(manifest.tasks);
    if (released.length === 0) return false;
    const named = released.slice(0, NAMED_RELEASED_URIS).join(', ');
    const more = released.length > NAMED_RELEASED_URIS ? ` and ${released.length - NAMED_RELEASED_URIS} more` : '';
    const message = `checkpoint ${checkpoint.id} builds on shared pieces that no retained checkpoint or savepoint names any more (they may be deleted): ${named}${more}`;
    this.deps.abort(checkpoint, 'ABORT_REASON_COMMIT_FAILED', message);
    return true;
  }

  /**
   * After a failed commit call: if etcd did not answer, the transaction may
   * have happened. Reads etcd to find out; never deletes anything.
   */
  private async resolveUnknownOutcome(checkpoint: Checkpoint, err: unknown): Promise<Committed | undefined> {
    if (!hasReason(err, 'UNAVAILABLE', 'INTERNAL')) return undefined;
    const { log } = this.deps;
    try {
      const summaries = await this.deps.store.listSummaries(this.deps.tracker.jobId);
      const found = summaries.find((s) => s.checkpointId === checkpoint.id);
      if (found !== undefined)
        log.warn({ checkpointId: checkpoint.id }, 'commit answered with an error but is in etcd');
      return found;
    } catch (readErr) {
      log.error({ err: readErr, checkpointId: checkpoint.id }, 'commit outcome unknown and etcd unreadable');
      return undefined;
    }
  }

  private completeCommitted(
    checkpoint: Checkpoint,
    now: number,
    result: Committed,
    deletedSome: boolean,
    stats: CommitStatistics,
  ): void {
    if (checkpoint.status !== 'PENDING') return;
    const older = this.deps.tracker.complete(checkpoint, now, result.manifestBytes, result.manifestParts);
    // Tasks (sinks committing their output) first, then watchers and waiting callers, then the log.
    this.deps.broadcasts.complete(checkpoint, now);
    this.deps.finished(checkpoint, stats);
    this.deps.log.info(
      {
        checkpointId: checkpoint.id,
        tasks: checkpoint.init.taskIds.length,
        manifestBytes: result.manifestBytes,
        manifestParts: result.manifestParts,
        durationMs: now - checkpoint.init.triggeredAtMs,
      },
      'checkpoint completed',
    );
    for (const old of older) {
      this.deps.abort(old, 'ABORT_REASON_SUBSUMED', `checkpoint ${checkpoint.id} completed first`);
    }
    if (result.manifestParts > 0) this.partsMayExist = true;
    if (this.partsMayExist && (deletedSome || result.manifestParts > 0)) this.collectGarbage();
    this.deps.arm();
  }

  private collectGarbage(): void {
    this.chain = this.chain.then(async () => {
      try {
        const { deleted, remaining } = await this.deps.store.collectGarbage(this.deps.tracker.jobId);
        if (deleted > 0) this.deps.log.debug({ deleted, remaining }, 'manifest parts collected');
        // Commits queue behind the collection, so none wrote parts meanwhile.
        if (remaining === 0) this.partsMayExist = false;
      } catch (err) {
        this.deps.log.warn({ err }, 'manifest part collection failed; it runs again after the next commit');
      }
    });
  }
}
