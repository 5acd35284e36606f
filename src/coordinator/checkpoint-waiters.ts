/**
 * Callers waiting for one job's checkpoints to finish (a manual trigger
 * with `wait`): each is answered with the checkpoint's final summary, or
 * with UNAVAILABLE when the coordinator stops first.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import { CkptError } from '../core/errors.js';

type Waiter = { resolve: (s: CheckpointSummary__Output) => void; reject: (err: CkptError) => void };

/** The waiting callers of one job, by checkpoint id. */
export class CheckpointWaiters {
  private readonly jobId: string;
  private readonly waiters = new Map<number, Waiter[]>();

  constructor(jobId: string) {
    this.jobId = jobId;
  }

  /** Resolves with the summary `finished` is given for `checkpointId`. */
  wait(checkpointId: number): Promise<CheckpointSummary__Output> {
    return new Promise((resolve, reject) => {
      this.waiters.set(checkpointId, [...(this.waiters.get(checkpointId) ?? []), { resolve, reject }]);
    });
  }

  /** A checkpoint completed or aborted: its waiters get its summary. */
  finished(summary: CheckpointSummary__Output): void {
    for (const waiter of this.waiters.get(summary.checkpointId) ?? []) waiter.resolve(summary);
    this.waiters.delete(summary.checkpointId);
  }

  /**
   * The coordinator stopped: every waiter fails with UNAVAILABLE (not
   * NOT_LEADER or SHUTTING_DOWN: the trigger did happen).
   */
  stopped(why: string): void {
    for (const [checkpointId, waiters] of this.waiters) {
      const message = `the coordinator stopped before checkpoint ${checkpointId} finished: ${why}`;
      const error = new CkptError('UNAVAILABLE', message, { jobId: this.jobId, checkpointId, retryable: true });
      for (const waiter of waiters) waiter.reject(error);
    }
    this.waiters.clear();
  }
}
