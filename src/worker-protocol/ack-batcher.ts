/**
 * Batching of a worker's acknowledgements: the results of its tasks for one
 * checkpoint are collected until every local task is in or `batchMs` has
 * passed since the first, and then sent together (the sender splits what
 * would be too large for one message).
 */
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';

/**
 * One task's outcome for one checkpoint. `silent`: the task will not answer
 * this checkpoint (its upload hangs, say); it counts towards the batch being
 * complete, so that the others are not held back for `batchMs`.
 */
export type TaskResult =
  | { kind: 'ack'; taskId: string; snapshot: TaskSnapshot }
  | { kind: 'decline'; taskId: string; message: string }
  | { kind: 'silent'; taskId: string };

/** The results of one checkpoint that are sent together. */
export interface AckBatch {
  checkpointId: number;
  epoch: number;
  acks: TaskSnapshot[];
  declines: { taskId: string; message: string }[];
}

/** Options of an `AckBatcher`. */
export interface AckBatcherOptions {
  /** How long to wait for more results after the first one of a checkpoint. */
  batchMs: number;
  /** How many results complete a checkpoint (the worker's task count). */
  expectedResults: number;
  /** Sends one batch. It must not reject; failures are the sender's to report. */
  send(batch: AckBatch): Promise<void>;
}

interface OpenBatch extends AckBatch {
  results: number;
  timer: NodeJS.Timeout;
}

/** Collects task results per checkpoint and hands them to `send` in batches. */
export class AckBatcher {
  readonly #open = new Map<number, OpenBatch>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #options: AckBatcherOptions;
  #closed = false;

  /** See `AckBatcherOptions`. */
  constructor(options: AckBatcherOptions) {
    this.#options = options;
  }

  /** Adds one task's result; a batch of another epoch for the same checkpoint is dropped first. */
  add(checkpointId: number, epoch: number, result: TaskResult): void {
    if (this.#closed) return;
    let batch = this.#open.get(checkpointId);
    if (batch !== undefined && batch.epoch !== epoch) {
      this.discard(checkpointId);
      batch = undefined;
    }
    batch ??= this.#openBatch(checkpointId, epoch);
    batch.results += 1;
    if (result.kind === 'ack') batch.acks.push(result.snapshot);
    else if (result.kind === 'decline') batch.declines.push({ taskId: result.taskId, message: result.message });
    if (batch.results >= this.#options.expectedResults) this.#flush(checkpointId);
  }

  /** Drops what is collected for `checkpointId` (or every id up to it with `upTo`) without sending it. */
  discard(checkpointId: number, upTo = false): void {
    for (const [id, batch] of [...this.#open]) {
      if (id !== checkpointId && !(upTo && id < checkpointId)) continue;
      clearTimeout(batch.timer);
      this.#open.delete(id);
    }
  }

  /** Drops everything collected for epochs other than `epoch`. */
  discardOtherEpochs(epoch: number): void {
    for (const [id, batch] of [...this.#open]) if (batch.epoch !== epoch) this.discard(id);
  }

  /** Checkpoints with results collected and not sent yet. */
  get openCheckpoints(): number[] {
    return [...this.#open.keys()];
  }

  /** Sends everything collected now and waits for every send in progress. */
  async flushAll(): Promise<void> {
    for (const id of [...this.#open.keys()]) this.#flush(id);
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Drops everything collected and accepts no more results; timers are cleared. */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#open.keys()]) this.discard(id);
  }

  #openBatch(checkpointId: number, epoch: number): OpenBatch {
    const timer = setTimeout(() => this.#flush(checkpointId), this.#options.batchMs);
    const batch: OpenBatch = { checkpointId, epoch, acks: [], declines: [], results: 0, timer };
    this.#open.set(checkpointId, batch);
    return batch;
  }

  #flush(checkpointId: number): void {
    const batch = this.#open.get(checkpointId);
    if (batch === undefined) return;
    clearTimeout(batch.timer);
    this.#open.delete(checkpointId);
    const { acks, declines, epoch } = batch;
    if (acks.length === 0 && declines.length === 0) return;
    const sending = this.#options
      .send({ checkpointId, epoch, acks, declines })
      .finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }
}
