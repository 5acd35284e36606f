/**
 * The records each input edge delivered in the current epoch, checked
 * against the count a barrier carries (`Barrier.records`): a barrier that
 * counts more records than its edge delivered means records were lost in
 * transit, and snapshotting then would commit state without them.
 */
import { CkptError } from '../core/errors.js';
import type { Edge } from '../bus/index.js';

/** Per-edge record counts of one epoch, keyed by the edge objects `subscribeData` hands out. */
export class EdgeRecordCounts {
  readonly #received = new Map<Edge, number>();

  /** A record of the current epoch arrived on `edge`. */
  record(edge: Edge): void {
    this.#received.set(edge, (this.#received.get(edge) ?? 0) + 1);
  }

  /**
   * A barrier of `checkpointId` on `edge` counts `sent` records before it:
   * undefined when the edge delivered as many, else the error its reader
   * fails with.
   */
  lost(edge: Edge, epoch: number, checkpointId: number, sent: number): CkptError | undefined {
    const received = this.#received.get(edge) ?? 0;
    if (sent === received) return undefined;
    const message =
      `records lost on edge ${edge.from} -> ${edge.to} in epoch ${epoch}: ` +
      `${sent} sent before barrier ${checkpointId}, ${received} received`;
    return new CkptError('UNAVAILABLE', message, { taskId: edge.to, epoch });
  }

  /** Forgets every count (a new epoch). */
  reset(): void {
    this.#received.clear();
  }
}
