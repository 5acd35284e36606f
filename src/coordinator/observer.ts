/**
 * What a coordinator tells an observer as it happens, e.g. to time it for
 * metrics: acknowledgements, commits and the end of worker sessions. The
 * lifecycle of checkpoints is published in `events.ts`; this carries what
 * summaries do not (how long each step took).
 */

/** Hears of a coordinator's timings; every method is called synchronously and must not throw. */
export interface CoordinatorObserver {
  /**
   * The coordinator recorded `tasks` new acknowledgements of a checkpoint
   * of the job, `latencyMs` after it triggered that checkpoint.
   */
  acknowledged(jobId: string, tasks: number, latencyMs: number): void;
  /** A fully acknowledged checkpoint of the job was committed to etcd in `durationMs`. */
  committed(jobId: string, durationMs: number): void;
  /** A worker session of the job ended after lasting `durationMs`. */
  sessionEnded(jobId: string, durationMs: number): void;
}
