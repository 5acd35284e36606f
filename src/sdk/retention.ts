/**
 * Releasing the snapshots that completed checkpoints subsume. A worker
 * keeps every snapshot of its tasks from the oldest checkpoint the job
 * retains on: with `retained` = r, that is the r-th newest committed
 * checkpoint it knows of. Knowing fewer commits than there are only makes
 * it keep more, never delete what a retained checkpoint needs.
 */
import type { Logger } from '../log/index.js';

/** What a `SnapshotRetention` needs. */
export interface RetentionOptions {
  /** Completed checkpoints the job keeps (the policy's `retained`, at least 1). */
  retained: number;
  /** The worker's tasks. */
  taskIds: readonly string[];
  /** Deletes a task's snapshots of checkpoints below `keepFrom`; resolves with how many. */
  release(taskId: string, keepFrom: number): Promise<number>;
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
  #releasing: Promise<void> = Promise.resolve();

  /** See `RetentionOptions`. */
  constructor(options: RetentionOptions) {
    this.#o = options;
  }

  /** Checkpoint `checkpointId` is committed (completed, or restored from). */
  committed(checkpointId: number): void {
    if (checkpointId <= 0) return;
    this.#committed.push(checkpointId);
    const floor = retentionFloor(this.#committed, this.#o.retained);
    this.#committed = this.#committed.filter((id) => floor === undefined || id >= floor);
    if (floor === undefined || floor <= this.#releasedBelow) return;
    this.#releasedBelow = floor;
    this.#releasing = this.#releasing.then(() => this.#releaseAll(floor));
  }

  /** Resolves when the releases started so far are done. */
  async settled(): Promise<void> {
    await this.#releasing;
  }

  async #releaseAll(keepFrom: number): Promise<void> {
    for (const taskId of this.#o.taskIds) {
      try {
        const deleted = await this.#o.release(taskId, keepFrom);
        if (deleted > 0) this.#o.logger.debug({ taskId, keepFrom, deleted }, 'released subsumed snapshots');
      } catch (err) {
        this.#o.logger.warn({ err, taskId, keepFrom }, 'releasing subsumed snapshots failed');
      }
    }
  }
}
