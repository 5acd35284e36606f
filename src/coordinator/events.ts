/**
 * Checkpoint lifecycle events inside the coordinator: every trigger,
 * completion and abort is published here, and each recovery of a job;
 * `WatchCheckpoints` streams and metrics subscribe.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';

/** Receives the checkpoint's summary after each change. */
export type CheckpointListener = (summary: CheckpointSummary__Output) => void;

/** A job entered a new epoch: every task restores `checkpointId` (0: starts empty). */
export interface RecoveryEvent {
  jobId: string;
  epoch: number;
  checkpointId: number;
}

/** A fan-out of lifecycle events, filtered by job. */
export class CheckpointEvents {
  private readonly listeners = new Set<{ jobId: string | undefined; listener: CheckpointListener }>();
  private readonly recoveryListeners = new Set<(event: RecoveryEvent) => void>();

  /** Subscribes to every job's recoveries; returns the unsubscribe function. */
  subscribeRecoveries(listener: (event: RecoveryEvent) => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  /** Delivers a recovery to every subscriber; a throwing one does not stop the others. */
  publishRecovery(event: RecoveryEvent): void {
    for (const listener of this.recoveryListeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  }

  /** Subscribes to one job's events, or all with `jobId` undefined; returns the unsubscribe function. */
  subscribe(jobId: string | undefined, listener: CheckpointListener): () => void {
    const entry = { jobId, listener };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  /** Delivers an event to every matching listener; a throwing listener does not stop the others. */
  publish(summary: CheckpointSummary__Output): void {
    for (const { jobId, listener } of this.listeners) {
      if (jobId !== undefined && jobId !== summary.jobId) continue;
      try {
        listener(summary);
      } catch {
        // A listener's failure is its own; the protocol goes on.
      }
    }
  }

  /** Number of subscribers, for metrics and leak checks in tests. */
  get size(): number {
    return this.listeners.size;
  }
}
