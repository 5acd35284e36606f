/**
 * Checkpoint latency as the coordinator sees it, read from WatchCheckpoints:
 * the coordinator sends a checkpoint's PENDING event when it triggers it
 * (just before the trigger goes out on NATS) and its COMPLETED event once
 * etcd has acknowledged the commit transaction. Both reach this process on
 * the same stream, so the time between their arrivals is trigger to commit
 * acknowledged, without the round trip of the TriggerCheckpoint call that
 * started it.
 */
import { performance } from 'node:perf_hooks';
import { createQueryClient, type QueryClient } from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';

/** How long `durationOf` waits for the COMPLETED event. */
const EVENT_TIMEOUT_MS = 30_000;

type Outcome = { ms: number } | { error: Error };

/** Watches one job's checkpoint events from the moment it is opened. */
export class CheckpointWatch {
  readonly #query: QueryClient;
  readonly #stop = new AbortController();
  readonly #pendingAt = new Map<number, number>();
  readonly #outcomes = new Map<number, Outcome>();
  readonly #waiting = new Map<number, (outcome: Outcome) => void>();

  /** Opens the stream; events of checkpoints triggered before it is established are missed. */
  constructor(address: string, jobId: string) {
    this.#query = createQueryClient(address);
    void this.#run(jobId);
  }

  /**
   * Resolves with the ms from `checkpointId`'s PENDING event to its
   * COMPLETED event; rejects if it aborted, the stream failed, or no
   * COMPLETED event came within 30 s.
   */
  async durationOf(checkpointId: number): Promise<number> {
    const outcome =
      this.#outcomes.get(checkpointId) ??
      (await new Promise<Outcome>((resolve) => {
        const timer = setTimeout(
          () => resolve({ error: new Error(`no COMPLETED event of checkpoint ${checkpointId}`) }),
          EVENT_TIMEOUT_MS,
        );
        this.#waiting.set(checkpointId, (o) => {
          clearTimeout(timer);
          resolve(o);
        });
      }));
    this.#outcomes.delete(checkpointId);
    this.#waiting.delete(checkpointId);
    if ('error' in outcome) throw outcome.error;
    return outcome.ms;
  }

  /** Ends the stream. */
  close(): void {
    this.#stop.abort();
    this.#query.close();
  }

  async #run(jobId: string): Promise<void> {
    try {
      for await (const summary of this.#query.watchCheckpoints({ jobId }, { signal: this.#stop.signal })) {
        this.#onEvent(summary, performance.now());
      }
    } catch (err) {
      const error = new Error(`WatchCheckpoints failed: ${err instanceof Error ? err.message : String(err)}`);
      for (const settle of this.#waiting.values()) settle({ error });
    }
  }

  #onEvent(summary: CheckpointSummary__Output, now: number): void {
    const id = summary.checkpointId;
    if (summary.state === 'CHECKPOINT_STATE_PENDING') {
      this.#pendingAt.set(id, now);
      return;
    }
    const pendingAt = this.#pendingAt.get(id);
    this.#pendingAt.delete(id);
    if (pendingAt === undefined) return;
    const outcome: Outcome =
      summary.state === 'CHECKPOINT_STATE_COMPLETED'
        ? { ms: now - pendingAt }
        : { error: new Error(`checkpoint ${id} ended ${summary.state}: ${summary.abortMessage}`) };
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) this.#outcomes.set(id, outcome);
    else waiting(outcome);
  }
}
