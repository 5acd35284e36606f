/**
 * One job's checkpoint statistics inside the leader: the figures
 * (`CheckpointStats`), read back from etcd when the job is loaded, and
 * their writes. A commit carries them in its own transaction; aborted
 * checkpoints and recoveries in between are written in one batch
 * `flushAfterMs` after the first of them, in the job's commit order so
 * that an older record never replaces a newer one. A leader that dies
 * within that time loses those few (their checkpoints are gone with it
 * anyway); nothing else does.
 */
import { CheckpointStats, emptyStatistics, type StatsLimits } from '../core/checkpoint-stats.js';
import type { Checkpoint } from '../core/checkpoint.js';
import { LeadershipLostError } from '../core/errors.js';
import type { CheckpointStore, LeaderGuard } from '../core/ports.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';
import type { Logger } from '../log/index.js';

/** Time from the first unwritten change to its batch write. */
export const STATS_FLUSH_MS = 2_000;

/** What the statistics of one job need. */
export interface JobStatisticsDeps {
  jobId: string;
  store: CheckpointStore;
  guard: LeaderGuard | undefined;
  log: Logger;
  /** Runs a write in the job's commit order. */
  inOrder: (write: () => Promise<void>) => void;
  onLeadershipLost: (err: LeadershipLostError) => void;
  /** What etcd held when the job was loaded, or undefined: counting starts at `sinceMs`. */
  stored: StoredCheckpointStatistics__Output | undefined;
  sinceMs: number;
  limits?: StatsLimits;
  flushAfterMs?: number;
}

/** A commit's statistics: what to store with it, and the version they extend. */
export interface CommitStatistics {
  statistics: StoredCheckpointStatistics__Output;
  version: number;
}

/** One job's statistics and their writes. */
export class JobStatistics {
  readonly #d: JobStatisticsDeps;
  readonly #stats: CheckpointStats;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: JobStatisticsDeps) {
    this.#d = deps;
    this.#stats = new CheckpointStats(deps.stored ?? emptyStatistics(deps.sinceMs), deps.limits);
  }

  /** What the commit of `checkpoint` (finishing at `nowMs`) stores with it. */
  forCommit(summary: CheckpointSummary__Output, checkpoint: Checkpoint): CommitStatistics {
    return {
      statistics: this.#stats.withCompleted(summary, checkpoint.taskFigures()),
      version: this.#stats.version,
    };
  }

  /** A checkpoint finished; `committedWith`: the statistics its commit stored. */
  finished(checkpoint: Checkpoint, committedWith?: CommitStatistics): void {
    const summary = checkpoint.summary();
    const tasks: TaskCheckpointStatistics__Output[] = checkpoint.takeTaskFigures();
    if (summary.state === 'CHECKPOINT_STATE_COMPLETED') {
      this.#stats.recordCompleted(summary, tasks, committedWith?.version);
    } else {
      this.#stats.recordAborted(summary, tasks);
    }
    this.#schedule();
  }

  /** The job entered `epoch`, its tasks restoring `checkpointId` (0: empty). */
  restored(epoch: number, checkpointId: number, nowMs: number): void {
    this.#stats.recordRestore({ epoch, checkpointId, restoredAtMs: nowMs });
    this.#schedule();
  }

  /** The figures, for queries. */
  get stats(): CheckpointStats {
    return this.#stats;
  }

  /** Stops the batch writes; what is unwritten stays so. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined || !this.#stats.dirty) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#d.inOrder(() => this.#flush());
    }, this.#d.flushAfterMs ?? STATS_FLUSH_MS);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    if (this.#stopped || !this.#stats.dirty) return;
    const version = this.#stats.version;
    try {
      await this.#d.store.putStatistics(this.#d.jobId, this.#stats.stored(), this.#d.guard);
      this.#stats.written(version);
    } catch (err) {
      if (err instanceof LeadershipLostError) {
        this.#d.onLeadershipLost(err);
        return;
      }
      this.#d.log.warn({ err }, 'checkpoint statistics not written; trying again');
    }
    this.#schedule();
  }
}
