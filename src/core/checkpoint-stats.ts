/**
 * A job's checkpoint statistics: counts since the job was submitted,
 * running figures of every completed checkpoint, the latest completed,
 * failed and restored, and a bounded history of finished checkpoints with
 * their per-task figures. The leader keeps them in etcd (see
 * `StoredCheckpointStatistics`), so a new leader shows the same; this class
 * holds them in memory and says what to write. It does no I/O and reads no
 * clock.
 *
 * Writes: a commit stores `withCompleted(...)` in its own transaction (no
 * extra write per completed checkpoint); aborted checkpoints and recoveries
 * between commits make the statistics `dirty`, and the leader writes them
 * in a batch later (or the next commit carries them).
 */
import type { CheckpointRecord__Output } from '../gen/ckpt/v1/CheckpointRecord.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { RestoreRecord__Output } from '../gen/ckpt/v1/RestoreRecord.js';
import type { RunningFigure__Output } from '../gen/ckpt/v1/RunningFigure.js';
import type { StatisticsDistribution__Output } from '../gen/ckpt/v1/StatisticsDistribution.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';

/** How much history the statistics keep. */
export interface StatsLimits {
  /** Finished checkpoints in the history. @default 50 */
  history: number;
  /** Of those, the newest this many keep their per-task figures. @default 10 */
  taskDetails: number;
}

/**
 * Every commit rewrites the record, and etcd keeps each version until it
 * compacts: the bounds keep a word count's record near 8 KiB.
 */
export const DEFAULT_STATS_LIMITS: Readonly<StatsLimits> = Object.freeze({ history: 50, taskDetails: 10 });

/**
 * Most per-task figures the history holds in all: a job of 100,000 tasks
 * keeps them for its newest checkpoint only, not for ten (a million
 * objects); the newest checkpoint keeps its own whatever their number.
 */
export const MAX_HISTORY_TASK_FIGURES = 100_000;

/** The figures the running figures and distributions follow. */
const FIGURES = {
  durationMs: (s: CheckpointSummary__Output) => Math.max(0, s.finishedAtMs - s.triggeredAtMs),
  stateSizeBytes: (s: CheckpointSummary__Output) => s.stateSizeBytes,
  persistedBytes: (s: CheckpointSummary__Output) => s.persistedBytes,
  alignmentMs: (s: CheckpointSummary__Output) => s.maxAlignmentMs,
} as const;

/** Each is also the name of its running figure in the stored record. */
type StoredFigure = keyof typeof FIGURES;

/** Empty statistics, counting from `sinceMs`. */
export function emptyStatistics(sinceMs: number): StoredCheckpointStatistics__Output {
  return {
    completed: 0,
    failed: 0,
    restored: 0,
    durationMs: emptyFigure(),
    stateSizeBytes: emptyFigure(),
    persistedBytes: emptyFigure(),
    alignmentMs: emptyFigure(),
    history: [],
    latestCompleted: null,
    latestFailed: null,
    latestRestored: null,
    countingSinceMs: sinceMs,
  };
}

function emptyFigure(): RunningFigure__Output {
  return { count: 0, min: 0, max: 0, sum: 0 };
}

function addToFigure(f: RunningFigure__Output | null, value: number): RunningFigure__Output {
  const base = f ?? emptyFigure();
  return {
    count: base.count + 1,
    min: base.count === 0 ? value : Math.min(base.min, value),
    max: Math.max(base.max, value),
    sum: base.sum + value,
  };
}

/** One job's statistics. */
export class CheckpointStats {
  readonly #limits: StatsLimits;
  #stored: StoredCheckpointStatistics__Output;
  /** Bumped by every change; `written` is the newest version stored. */
  #version = 0;
  #written = 0;

  /** `stored`: what etcd held (already checked by the store), or `emptyStatistics`. */
  constructor(stored: StoredCheckpointStatistics__Output, limits: StatsLimits = DEFAULT_STATS_LIMITS) {
    this.#limits = limits;
    this.#stored = bound(stored, limits);
  }

  /** Changes not yet stored (aborted checkpoints, recoveries). */
  get dirty(): boolean {
    return this.#version > this.#written;
  }

  get version(): number {
    return this.#version;
  }

  /** What to store now. */
  stored(): StoredCheckpointStatistics__Output {
    return this.#stored;
  }

  /** What to store with the commit of `summary`: the statistics as they will be once it completes. */
  withCompleted(
    summary: CheckpointSummary__Output,
    tasks: TaskCheckpointStatistics__Output[],
  ): StoredCheckpointStatistics__Output {
    return this.#completed(this.#stored, summary, tasks);
  }

  /** The statistics at `version` are stored. */
  written(version: number): void {
    this.#written = Math.max(this.#written, version);
  }

  /**
   * A checkpoint completed. `storedWith`: the version whose statistics its
   * commit stored (from `withCompleted`), so nothing is left to write when
   * nothing changed since.
   */
  recordCompleted(
    summary: CheckpointSummary__Output,
    tasks: TaskCheckpointStatistics__Output[],
    storedWith?: number,
  ): void {
    this.#stored = this.#completed(this.#stored, summary, tasks);
    this.#version += 1;
    if (storedWith !== undefined && storedWith === this.#version - 1) this.written(this.#version);
  }

  #completed(
    s: StoredCheckpointStatistics__Output,
    summary: CheckpointSummary__Output,
    tasks: TaskCheckpointStatistics__Output[],
  ): StoredCheckpointStatistics__Output {
    if (s.history.some((r) => r.summary?.checkpointId === summary.checkpointId)) return s;
    const next: StoredCheckpointStatistics__Output = {
      ...s,
      completed: s.completed + 1,
      latestCompleted: summary,
      history: [{ summary, tasks }, ...s.history],
    };
    for (const name of Object.keys(FIGURES) as StoredFigure[]) {
      next[name] = addToFigure(s[name], FIGURES[name](summary));
    }
    return bound(next, this.#limits);
  }

  /** A checkpoint was aborted. */
  recordAborted(summary: CheckpointSummary__Output, tasks: TaskCheckpointStatistics__Output[]): void {
    const s = this.#stored;
    if (s.history.some((r) => r.summary?.checkpointId === summary.checkpointId)) return;
    this.#stored = bound(
      { ...s, failed: s.failed + 1, latestFailed: summary, history: [{ summary, tasks }, ...s.history] },
      this.#limits,
    );
    this.#version += 1;
  }

  /** The job entered a new epoch, restoring `checkpointId` (0: empty). */
  recordRestore(restore: RestoreRecord__Output): void {
    this.#stored = { ...this.#stored, restored: this.#stored.restored + 1, latestRestored: restore };
    this.#version += 1;
  }

  /** The record of a finished checkpoint the history keeps. */
  find(checkpointId: number): CheckpointRecord__Output | undefined {
    return this.#stored.history.find((r) => r.summary?.checkpointId === checkpointId);
  }

  /** What `GetCheckpointStatistics` answers; `pending`, newest first, are the checkpoints in progress. */
  view(jobId: string, pending: CheckpointSummary__Output[]): CheckpointStatistics__Output {
    const s = this.#stored;
    const completed = s.history.flatMap((r) => (r.summary?.state === 'CHECKPOINT_STATE_COMPLETED' ? [r.summary] : []));
    const distribution = (name: StoredFigure): StatisticsDistribution__Output =>
      distributionOf(s[name] ?? emptyFigure(), completed.map(FIGURES[name]));
    const finished = s.history.flatMap((r) => (r.summary === null ? [] : [r.summary]));
    const pendingIds = new Set(pending.map((p) => p.checkpointId));
    return {
      jobId,
      counts: {
        triggered: s.completed + s.failed + pending.length,
        inProgress: pending.length,
        completed: s.completed,
        failed: s.failed,
        restored: s.restored,
      },
      durationMs: distribution('durationMs'),
      stateSizeBytes: distribution('stateSizeBytes'),
      persistedBytes: distribution('persistedBytes'),
      alignmentMs: distribution('alignmentMs'),
      latestCompleted: s.latestCompleted,
      latestFailed: s.latestFailed,
      latestRestored: s.latestRestored,
      history: [...pending, ...finished.filter((f) => !pendingIds.has(f.checkpointId))].sort(
        (a, b) => b.checkpointId - a.checkpointId,
      ),
      countingSinceMs: s.countingSinceMs,
    };
  }
}

/**
 * Holds the history to its limits: newest first, at most `history`
 * entries, per-task figures on the newest `taskDetails` only.
 */
function bound(s: StoredCheckpointStatistics__Output, limits: StatsLimits): StoredCheckpointStatistics__Output {
  let figures = 0;
  const history = [...s.history]
    .filter((r) => r.summary !== null)
    .sort((a, b) => (b.summary?.checkpointId ?? 0) - (a.summary?.checkpointId ?? 0))
    .slice(0, limits.history)
    .map((r, i) => {
      figures += r.tasks.length;
      const keep = i === 0 || (i < limits.taskDetails && figures <= MAX_HISTORY_TASK_FIGURES);
      return keep || r.tasks.length === 0 ? r : { ...r, tasks: [] };
    });
  return { ...s, history };
}

/**
 * Count, min, max and average from the running figure (every completion
 * counted); percentiles from `recent` (the completions in the history),
 * nearest rank.
 */
export function distributionOf(figure: RunningFigure__Output, recent: number[]): StatisticsDistribution__Output {
  const sorted = [...recent].sort((a, b) => a - b);
  const rank = (p: number): number => {
    if (sorted.length === 0) return 0;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
  };
  return {
    count: figure.count,
    min: figure.min,
    max: figure.max,
    avg: figure.count === 0 ? 0 : Math.round(figure.sum / figure.count),
    p50: rank(50),
    p90: rank(90),
    p99: rank(99),
  };
}
