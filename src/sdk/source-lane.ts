/**
 * The queue between a source's reading and its task's loop: a pump reads
 * the source into it, at most `max` messages ahead, and the loop takes one
 * message at a time, so snapshots fall between two messages.
 */
import { Fifo } from './fifo.js';
import type { SourceMessage, SourcePosition, SourceTask, TaskContext } from './task.js';

/** Reads one source into a bounded queue. */
export class SourceLane {
  readonly #queue = new Fifo<SourceMessage<unknown>>();
  readonly #max: number;
  readonly #onMessage: () => void;
  #run = 0;
  #reading = false;
  #space: (() => void) | undefined;

  /** `onMessage` is called after each message queued (to wake the task's loop). */
  constructor(max: number, onMessage: () => void) {
    this.#max = max;
    this.#onMessage = onMessage;
  }

  /** True while a pump reads. */
  get reading(): boolean {
    return this.#reading;
  }

  /**
   * Starts reading `task` after `positions` until `stop()` or
   * `ctx.signal` aborts; `onError` gets what the source throws meanwhile.
   */
  start(
    task: SourceTask<unknown>,
    positions: readonly SourcePosition[],
    ctx: TaskContext,
    onError: (err: unknown) => void,
  ): void {
    if (this.#reading) return;
    this.#reading = true;
    void this.#pump(this.#run, task, positions, ctx, onError);
  }

  /** The oldest queued message, making room for the pump. */
  shift(): SourceMessage<unknown> | undefined {
    const message = this.#queue.shift();
    if (this.#queue.length < this.#max) this.#release();
    return message;
  }

  /** Ends the pump and drops every queued message. */
  stop(): void {
    this.#run += 1;
    this.#reading = false;
    this.#queue.clear();
    this.#release();
  }

  async #pump(
    run: number,
    task: SourceTask<unknown>,
    positions: readonly SourcePosition[],
    ctx: TaskContext,
    onError: (err: unknown) => void,
  ): Promise<void> {
    try {
      for await (const message of task.read(positions, ctx)) {
        if (run !== this.#run) return;
        this.#queue.push(message);
        this.#onMessage();
        while (this.#queue.length >= this.#max && run === this.#run) {
          await new Promise<void>((resolve) => {
            this.#space = resolve;
          });
        }
      }
    } catch (err) {
      if (run === this.#run && !ctx.signal.aborted) onError(err);
    }
  }

  #release(): void {
    const space = this.#space;
    this.#space = undefined;
    space?.();
  }
}
