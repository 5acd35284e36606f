/**
 * When a worker's tasks may start in an epoch, and what happens to the
 * triggers that arrive before: the epoch's restore must be done first.
 *
 * The two channels are not ordered against each other (PROTOCOL.md §5):
 * the StartCommand comes on the gRPC session, triggers on NATS. The
 * coordinator triggers an epoch's checkpoints only after it sent that
 * epoch's start, so a trigger of the current epoch also counts as the
 * start when the StartCommand has not arrived yet: the sources start, then
 * take the trigger. A trigger that arrives while the epoch's restore still
 * runs is held (rule R1), at most `MAX_HELD_TRIGGERS`, and handled once the
 * restore is done; a start asked for meanwhile happens then too.
 */
import type { Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import type { Logger } from '../log/index.js';

/** Most triggers held while a restore runs; the oldest goes first (the coordinator times it out). */
export const MAX_HELD_TRIGGERS = 64;

/** What a gate works with. */
export interface EpochGateOptions {
  /** The worker's epoch now. */
  epoch(): number;
  /** True once the worker is closed: triggers are ignored. */
  closed(): boolean;
  /** Starts the tasks in `epoch` (sources begin reading); called once per epoch. */
  start(epoch: number): void;
  /** Hands on a trigger the tasks may take now. */
  trigger(trigger: Trigger__Output): void;
  /** A held trigger was dropped to make room for a newer one. */
  dropped(trigger: Trigger__Output): void;
  logger: Logger;
}

/** The start of one worker's tasks in each epoch, and the triggers held until its restore is done. */
export class EpochGate {
  readonly #o: EpochGateOptions;
  #restoredEpoch = -1;
  #startRequested = -1;
  #started = false;
  /** Triggers of the current epoch that arrived while its restore ran. */
  #held: Trigger__Output[] = [];

  /** See `EpochGateOptions`. */
  constructor(options: EpochGateOptions) {
    this.#o = options;
  }

  /** The epoch the tasks have restored and run in; 0 before the first restore. */
  get runningEpoch(): number {
    const epoch = this.#o.epoch();
    return this.#restoredEpoch === epoch ? epoch : 0;
  }

  /** Whether the tasks restored the current epoch. */
  get restored(): boolean {
    return this.#restoredEpoch === this.#o.epoch();
  }

  /** The worker moved to another epoch: nothing is restored or started in it yet, held triggers are dropped. */
  entered(): void {
    this.#held = [];
    this.#started = false;
    this.#restoredEpoch = -1;
  }

  /** The restore of `epoch` is done (tasks report ready next; then `release`). */
  restoredIn(epoch: number): void {
    this.#restoredEpoch = epoch;
  }

  /** After the restore of `epoch`: starts the tasks if that was asked for, and handles the held triggers. */
  release(epoch: number): void {
    if (this.#startRequested === epoch) this.start(epoch);
    for (const trigger of this.#held.splice(0)) this.offer(trigger);
  }

  /** A start of `epoch` (the StartCommand, or a trigger that implies it); waits for the restore. */
  start(epoch: number): void {
    if (epoch !== this.#o.epoch()) return;
    this.#startRequested = epoch;
    if (this.#restoredEpoch !== epoch || this.#started) return;
    this.#started = true;
    this.#o.start(epoch);
  }

  /** A trigger that passed the intake (its term confirmed): held, or handed on after the start it implies. */
  offer(trigger: Trigger__Output): void {
    if (this.#o.closed()) return;
    const epoch = this.#o.epoch();
    if (trigger.epoch === epoch && this.#restoredEpoch !== epoch) {
      if (this.#held.length >= MAX_HELD_TRIGGERS) this.#o.dropped(this.#held.shift() as Trigger__Output);
      this.#held.push(trigger);
      this.#o.logger.debug({ checkpointId: trigger.checkpointId, epoch }, 'trigger held until the restore is done');
      return;
    }
    if (trigger.epoch === epoch && !this.#started) this.start(trigger.epoch);
    this.#o.trigger(trigger);
  }
}
