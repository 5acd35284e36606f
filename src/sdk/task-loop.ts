/**
 * The loop of one task: runs its work one piece at a time, synchronously
 * back to back while pieces return nothing, and waits only for a piece
 * that returns a promise. Long synchronous batches give the event loop a
 * turn; a call that never returns is waited for only until the task halts
 * (and, on restore or close, at most `abandonCallAfterMs`).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from '../log/index.js';
import { isPromiseLike, settledWithin } from './promise-like.js';

/** What `step` returns when there is nothing to do. */
export const IDLE = Symbol('idle');

/**
 * The loop gives the event loop a turn after this much synchronous work,
 * so that heartbeats, timers and deliveries keep flowing under load.
 */
const SLICE_MS = 10;
/** The clock is read once every this many pieces of work. */
const SLICE_CHECK_EVERY = 32;

/** What a loop runs and tells. */
export interface TaskLoopOptions {
  /** Does the next piece of work and returns its result, or `IDLE` when there is none. */
  step(): unknown;
  /** True once the task is closed: the loop ends. */
  closed(): boolean;
  /** The task's generation now: a failure of an older one is not the task's any more. */
  generation(): number;
  /** A piece of work threw or its promise rejected, in `generation`. */
  onFailure(err: unknown, generation: number): void;
  abandonCallAfterMs: number;
  logger: Logger;
}

/** The sequential loop of one task. */
export class TaskLoop {
  readonly #o: TaskLoopOptions;
  readonly #done: Promise<void>;
  #current: PromiseLike<unknown> = Promise.resolve();
  /** When the call the loop waits for began (`performance.now()`); undefined when none. */
  #busySince: number | undefined;
  /** Ends the loop's wait for the current call (a halt). */
  #interrupt: (() => void) | undefined;
  #wakeUp: (() => void) | undefined;

  /** Starts the loop; it runs until `closed()` and a wake-up. */
  constructor(options: TaskLoopOptions) {
    this.#o = options;
    this.#done = this.#run();
  }

  /** When the call the loop waits for began; undefined when it waits for none. */
  get busySince(): number | undefined {
    return this.#busySince;
  }

  /** Resolves when the loop has ended. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** There may be work: an idle loop looks again. */
  wake(): void {
    const wakeUp = this.#wakeUp;
    this.#wakeUp = undefined;
    wakeUp?.();
  }

  /** Stops waiting for the current call (the task halted); the call itself goes on. */
  interrupt(): void {
    this.#interrupt?.();
  }

  /** Waits for the call of the ended run, at most `abandonCallAfterMs`, then abandons it. */
  async settleCurrent(): Promise<void> {
    const current = this.#current;
    if (await settledWithin(current, this.#o.abandonCallAfterMs)) return;
    if (this.#current === current) this.#current = Promise.resolve();
    this.#o.logger.error(
      { abandonedAfterMs: this.#o.abandonCallAfterMs },
      'a call of the task did not return after its run ended; abandoned',
    );
  }

  async #run(): Promise<void> {
    while (!this.#o.closed()) {
      const step = this.#drain();
      if (step === 'idle') {
        await new Promise<void>((resolve) => {
          this.#wakeUp = resolve;
        });
        // Let the rest of the delivery that woke the loop arrive, so that it is processed as one batch.
        await nextTurn();
      } else if (step === 'yield') {
        await nextTurn();
      } else {
        this.#current = step.promise;
        this.#busySince = performance.now();
        const failure = await this.#settleOrInterrupt(step.promise);
        this.#busySince = undefined;
        if (failure !== undefined) this.#o.onFailure(failure.err, step.generation);
      }
    }
  }

  /**
   * Runs queued work synchronously until there is none (`idle`), a piece
   * of work returns a promise (the loop waits for it before the next one),
   * or the time slice is used up (`yield`: timers and I/O run first).
   */
  #drain(): 'idle' | 'yield' | { promise: PromiseLike<unknown>; generation: number } {
    const until = performance.now() + SLICE_MS;
    for (let n = 1; ; n += 1) {
      const generation = this.#o.generation();
      try {
        const result = this.#o.step();
        if (result === IDLE) return 'idle';
        if (isPromiseLike(result)) return { promise: result, generation };
      } catch (err) {
        this.#o.onFailure(err, generation);
      }
      if (n % SLICE_CHECK_EVERY === 0 && performance.now() >= until) return 'yield';
    }
  }

  /**
   * Waits until `call` settles, or the task halts: a call that never
   * returns must not hold up the next epoch. Resolves with the rejection.
   */
  async #settleOrInterrupt(call: PromiseLike<unknown>): Promise<{ err: unknown } | undefined> {
    try {
      return await new Promise<{ err: unknown } | undefined>((resolve) => {
        this.#interrupt = () => resolve(undefined);
        call.then(
          () => resolve(undefined),
          (err: unknown) => resolve({ err }),
        );
      });
    } finally {
      this.#interrupt = undefined;
    }
  }
}
