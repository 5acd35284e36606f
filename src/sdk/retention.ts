/**
 * Releasing the snapshots that completed checkpoints subsume. A worker
 * keeps every snapshot of its tasks from the oldest checkpoint the job
 * retains on: with `retained` = r, that is the r-th newest committed
 * checkpoint it knows of. Knowing fewer commits than there are only makes
 * it keep more, never delete what a retained checkpoint needs.
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
    const { backend, jobId, taskIds, logger } = this.#o;
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
