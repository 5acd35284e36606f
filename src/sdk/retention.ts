/**
 * Releasing the snapshots that completed checkpoints subsume. A worker
 * keeps every snapshot of its tasks from the oldest checkpoint the job
 * retains on: with `retained` = r, that is the r-th newest committed
 * checkpoint it knows of. Knowing fewer commits than there are only makes
 * it keep more, never delete what a retained checkpoint needs.
 *
 * The first release after the worker starts or restores sweeps every task
 * (what an earlier process stored); later ones only the tasks that stored
 * a snapshot below the new floor since, so that a checkpoint of tasks
 * without state costs the backend nothing.
 */
import type { Logger } from '../log/index.js';
import type { StateBackend } from './state/index.js';

/** Tasks whose snapshots are released at once when the backend releases one task at a time. */
export const RELEASE_CONCURRENCY = 8;

/** What a `SnapshotRetention` needs. */
export interface RetentionOptions {
  /** Completed checkpoints the job keeps (the policy's `retained`, at least 1). */
  retained: number;
  jobId: string;
  /** The worker's tasks. */
  taskIds: readonly string[];
  /** Where the snapshots are released; all tasks at once when it can (`releaseTasks`). */
  backend: Pick<StateBackend, 'release' | 'releaseTasks'>;
  logger: Logger;
}

/**
 * The lowest checkpoint id to keep, given the committed ids known and how
 * many the job retains; undefined while fewer than `retained` are known.
 */
export function retentionFloor(committed: readonly number[], retained: number): number | undefined {
  const newest = [...new Set(committed)].sort((a, b) => b - a);
  return newest[Math.max(1, retained) - 1];
}

/** Tracks committed checkpoints and releases what they subsume. */
export class SnapshotRetention {
  readonly #o: RetentionOptions;
  #committed: number[] = [];
  #releasedBelow = 0;
  /** Sweep every task at the next release. */
  #sweep = true;
  /** Per task, the checkpoints it stored a snapshot of that are not released yet. */
  readonly #stored = new Map<string, number[]>();
  #releasing: Promise<void> = Promise.resolve();

  /** See `RetentionOptions`. */
  constructor(options: RetentionOptions) {
    this.#o = options;
  }

  /** `taskId` stored a snapshot of `checkpointId` (an empty one stores nothing and is not reported). */
  stored(taskId: string, checkpointId: number): void {
    const ids = this.#stored.get(taskId);
    if (ids === undefined) this.#stored.set(taskId, [checkpointId]);
    else ids.push(checkpointId);
  }

  /** The tasks restored: what an earlier epoch or process stored is swept at the next release. */
  restored(): void {
    this.#sweep = true;
  }

  /** Checkpoint `checkpointId` is committed (completed, or restored from). */
  committed(checkpointId: number): void {
    if (checkpointId <= 0) return;
    this.#committed.push(checkpointId);
    const floor = retentionFloor(this.#committed, this.#o.retained);
    this.#committed = this.#committed.filter((id) => floor === undefined || id >= floor);
    if (floor === undefined || floor <= this.#releasedBelow) return;
    this.#releasedBelow = floor;
    const taskIds = this.#sweep ? this.#o.taskIds : this.#storedBelow(floor);
    this.#sweep = false;
    for (const [taskId, ids] of this.#stored) {
      const kept = ids.filter((id) => id >= floor);
      if (kept.length > 0) this.#stored.set(taskId, kept);
      else this.#stored.delete(taskId);
    }
    if (taskIds.length > 0) this.#releasing = this.#releasing.then(() => this.#releaseAll(floor, taskIds));
  }

  /** The tasks that stored a snapshot below `floor` since the last release. */
  #storedBelow(floor: number): string[] {
    return [...this.#stored].filter(([, ids]) => ids.some((id) => id < floor)).map(([taskId]) => taskId);
  }

  /** Resolves when the releases started so far are done. */
  async settled(): Promise<void> {
    await this.#releasing;
  }

  async #releaseAll(keepFrom: number, taskIds: readonly string[]): Promise<void> {
    const { backend, jobId, logger } = this.#o;
    if (backend.releaseTasks !== undefined) {
      try {
        const deleted = await backend.releaseTasks(jobId, taskIds, keepFrom);
        if (deleted > 0) logger.debug({ keepFrom, deleted }, 'released subsumed snapshots');
      } catch (err) {
        logger.warn({ err, keepFrom }, 'releasing subsumed snapshots failed');
      }
      return;
    }
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < taskIds.length; i = next++) await this.#releaseOne(taskIds[i] as string, keepFrom);
    };
    await Promise.all(Array.from({ length: Math.min(RELEASE_CONCURRENCY, taskIds.length) }, lane));
  }

  async #releaseOne(taskId: string, keepFrom: number): Promise<void> {
    const { backend, jobId, logger } = this.#o;
    try {
      const deleted = await backend.release(jobId, taskId, new Set(), keepFrom);
      if (deleted > 0) logger.debug({ taskId, keepFrom, deleted }, 'released subsumed snapshots');
    } catch (err) {
      logger.warn({ err, taskId, keepFrom }, 'releasing subsumed snapshots failed');
    }
  }
}
