/**
 * Batching of a worker's acknowledgements: the results of its tasks for one
 * checkpoint are collected for a short window, or until every task is in,
 * and then sent together.
 */
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../../src/log/index.js';

/** One task's outcome for one checkpoint. */
export type TaskResult =
  | { kind: 'ack'; taskId: string; snapshot: TaskSnapshot__Output }
  | { kind: 'decline'; taskId: string; message: string }
  | { kind: 'silent'; taskId: string };

/** The results of one checkpoint that are sent together. */
export interface AckBatch {
  checkpointId: number;
  epoch: number;
  acks: TaskSnapshot__Output[];
  declines: { taskId: string; message: string }[];
}

/** Options of an `AckBatcher`. */
export interface AckBatcherOptions {
  /** How long to wait for more results after the first one of a checkpoint. */
  batchMs: number;
  /** How many results complete a checkpoint (the worker's task count). */
  expectedResults: number;
  /** Sends one batch; failures are the sender's to report. */
  send(batch: AckBatch): Promise<void>;
  logger: Logger;
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

  constructor(options: AckBatcherOptions) {
    this.#options = options;
  }

  /** Adds one task's result for `checkpointId` in `epoch`. */
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
    if (result.kind === 'decline') batch.declines.push({ taskId: result.taskId, message: result.message });
    if (batch.results >= this.#options.expectedResults) this.#flush(checkpointId);
  }

  /** Drops what is collected for `checkpointId` (or every id up to it with `upTo`) without sending it. */
  discard(checkpointId: number, upTo = false): void {
    const ids = upTo ? [...this.#open.keys()].filter((id) => id <= checkpointId) : [checkpointId];
    for (const id of ids) {
      const batch = this.#open.get(id);
      if (batch === undefined) continue;
      clearTimeout(batch.timer);
      this.#open.delete(id);
    }
  }

  /** Drops everything collected. */
  discardAll(): void {
    for (const id of [...this.#open.keys()]) this.discard(id);
  }

  /** Sends everything collected now and waits for all sends in progress. */
  async flushAll(): Promise<void> {
    for (const id of [...this.#open.keys()]) this.#flush(id);
    await Promise.allSettled([...this.#inFlight]);
  }

  /** Drops everything collected and accepts no more results; timers are cleared. */
  close(): void {
    this.#closed = true;
    this.discardAll();
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
    if (batch.acks.length === 0 && batch.declines.length === 0) return;
    const { acks, declines, epoch } = batch;
    const sending = this.#options
      .send({ checkpointId, epoch, acks, declines })
      .catch((err: unknown) => this.#options.logger.warn({ err, checkpointId }, 'sending a batch failed'))
      .finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }
}

/** Upper bound of the encoded size of one snapshot entry, without encoding it. */
export function estimateSnapshotBytes(snapshot: TaskSnapshot__Output): number {
  let bytes = 96 + snapshot.taskId.length;
  const state = snapshot.state;
  if (state !== null) bytes += handleBytes(state);
  for (const p of snapshot.positions) bytes += 24 + p.input.length;
  return bytes;
}

function handleBytes(handle: NonNullable<TaskSnapshot__Output['state']>): number {
  let bytes = 32 + handle.uri.length + handle.checksum.length;
  for (const shared of handle.shared) bytes += handleBytes(shared);
  return bytes;
}

/** Splits snapshots into runs whose estimated size stays below `maxBytes` (each run has at least one). */
export function splitBySize(snapshots: readonly TaskSnapshot__Output[], maxBytes: number): TaskSnapshot__Output[][] {
  const runs: TaskSnapshot__Output[][] = [];
  let run: TaskSnapshot__Output[] = [];
  let size = 0;
  for (const s of snapshots) {
    const bytes = estimateSnapshotBytes(s);
    if (run.length > 0 && size + bytes > maxBytes) {
      runs.push(run);
      run = [];
      size = 0;
    }
    run.push(s);
    size += bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
