/**
 * The timer of a task's aligned-checkpoint timeouts (ALIGNED mode with the
 * policy's `aligned_checkpoint_timeout_ms`): the aligner times a checkpoint
 * out only when the task's loop asks it for its next action, so the loop
 * must run at the next timeout even when nothing else arrives. One timer
 * at a time, for the earliest timeout; it is set again each time the loop
 * has asked the aligner after it fired.
 */

/** What the timer works with. */
export interface AlignmentTimeoutsOptions {
  /** When (wall clock, ms) the next checkpoint times out if it has not aligned; undefined: none will. */
  nextTimeout(): number | undefined;
  /** Wakes the task's loop. */
  wake(): void;
}

/** Wakes a task's loop when its next aligned checkpoint times out. */
export class AlignmentTimeouts {
  readonly #o: AlignmentTimeoutsOptions;
  #timer: NodeJS.Timeout | undefined;
  /** The timer fired: set it again once the aligner was asked. */
  #due = false;

  /** See `AlignmentTimeoutsOptions`. */
  constructor(options: AlignmentTimeoutsOptions) {
    this.#o = options;
  }

  /** Sets the timer for the next timeout, unless it is set or none is due (a barrier was offered). */
  arm(): void {
    if (this.#timer !== undefined) return;
    const at = this.#o.nextTimeout();
    if (at === undefined) return;
    this.#timer = setTimeout(
      () => {
        // The loop times the checkpoint out when it next asks the aligner, then sets the timer for the next one.
        this.#timer = undefined;
        this.#due = true;
        this.#o.wake();
      },
      Math.max(1, at - Date.now()),
    );
    this.#timer.unref();
  }

  /** The loop asked the aligner: after the timer fired, sets it for the next timeout. */
  asked(): void {
    if (!this.#due) return;
    this.#due = false;
    this.arm();
  }

  /** Clears the timer (the task's run ended). */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = false;
  }
}
