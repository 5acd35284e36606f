/**
 * A job's checkpoints in memory: the pending ones, with their deadlines and
 * the acknowledgement bytes they hold, and a bounded history of finished
 * ones for listings. Committed manifests themselves live in etcd.
 */
import type { Checkpoint } from './checkpoint.js';

/** @default 100 finished checkpoints remembered per job for listings. */
export const DEFAULT_HISTORY_SIZE = 100;

/** Pending and remembered checkpoints of one job. */
export class JobCheckpoints {
  private readonly pending = new Map<number, Checkpoint>();
  private readonly history: Checkpoint[] = [];
  private readonly historySize: number;

  constructor(historySize = DEFAULT_HISTORY_SIZE) {
    this.historySize = historySize;
  }

  /** Number of pending checkpoints. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Adds a checkpoint just triggered. */
  add(checkpoint: Checkpoint): void {
    this.pending.set(checkpoint.id, checkpoint);
  }

  /** Moves a checkpoint that completed or aborted to the history, dropping the oldest beyond its size. */
  finish(checkpoint: Checkpoint): void {
    this.pending.delete(checkpoint.id);
    this.history.unshift(checkpoint);
    if (this.history.length > this.historySize) this.history.length = this.historySize;
  }

  /** Pending checkpoints, oldest first. */
  pendingCheckpoints(): Checkpoint[] {
    return [...this.pending.values()].sort((a, b) => a.id - b.id);
  }

  /** A pending or remembered checkpoint. */
  find(checkpointId: number): Checkpoint | undefined {
    return this.pending.get(checkpointId) ?? this.history.find((c) => c.id === checkpointId);
  }

  /** Pending and remembered checkpoints, newest first. */
  known(): Checkpoint[] {
    return [...this.pending.values(), ...this.history].sort((a, b) => b.id - a.id);
  }

  /** Approximate bytes of acknowledgements the pending checkpoints hold. */
  pendingAckBytes(): number {
    let bytes = 0;
    for (const c of this.pending.values()) bytes += c.ackBytes;
    return bytes;
  }

  /** Pending checkpoints past their deadline that are not committing. */
  expired(nowMs: number): Checkpoint[] {
    return this.pendingCheckpoints().filter((c) => !c.committing && c.init.deadlineMs <= nowMs);
  }

  /** The earliest deadline of the pending checkpoints. */
  nextDeadlineMs(): number | undefined {
    const deadlines = this.pendingCheckpoints().map((c) => c.init.deadlineMs);
    return deadlines.length === 0 ? undefined : Math.min(...deadlines);
  }

  /** Pending checkpoints older than `checkpointId` that are not committing: a commit of it subsumes them. */
  olderThan(checkpointId: number): Checkpoint[] {
    return this.pendingCheckpoints().filter((c) => c.id < checkpointId && !c.committing);
  }
}
