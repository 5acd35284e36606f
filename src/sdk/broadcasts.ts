/**
 * What a worker's tasks do with the control messages that passed its
 * `ControlIntake`: triggers tell every task when a checkpoint started (its
 * start delay), sources take them (each above the last it took in
 * the epoch) or decline what they cannot take, completions run the
 * tasks' hooks, aborts drop what the tasks
 * hold for the checkpoints, and a recover broadcast is only reported: the
 * session's restore moves the tasks.
 */
import type { EventEmitter } from 'node:events';
import type { AbortRange, CheckpointBeliefs, ControlHandlers, DropLog } from '../bus/index.js';
import type { CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../gen/ckpt/v1/Recover.js';
import type { Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import type { Logger } from '../log/index.js';
import type { AckBatcher } from '../worker-protocol/index.js';
import type { WorkerEventMap } from './events.js';
import type { TaskRunner } from './task-runner.js';
import type { TriggerTimes } from './trigger-times.js';

/** What the broadcasts act on. */
export interface BroadcastsOptions {
  runners: ReadonlyMap<string, TaskRunner>;
  batcher: AckBatcher;
  /** The session's beliefs: the epoch, confirmed ids, what the sources took. */
  beliefs: CheckpointBeliefs;
  /** Where the trigger times go, for every task's start delay. */
  triggerTimes: TriggerTimes;
  events: EventEmitter<WorkerEventMap>;
  drops: DropLog;
  logger: Logger;
}

/** The handlers of a worker's checked control messages. */
export class Broadcasts implements ControlHandlers {
  readonly #o: BroadcastsOptions;
  readonly #sources: TaskRunner[] = [];

  /** See `BroadcastsOptions`. */
  constructor(options: BroadcastsOptions) {
    this.#o = options;
  }

  /** `runner` is a source: it gets the triggers. */
  addSource(runner: TaskRunner): void {
    this.#sources.push(runner);
  }

  /** A trigger of the current epoch with a plausible id: its time is kept; each source takes it or cannot. */
  trigger(trigger: Trigger__Output): void {
    const { beliefs } = this.#o;
    const { epoch, checkpointId } = trigger;
    this.#o.triggerTimes.heard(checkpointId, trigger.triggeredAtMs);
    for (const runner of this.#sources) {
      if (!beliefs.takes(runner.taskId, checkpointId)) {
        this.#cannotTake(runner, trigger, 'it took this trigger or a later one in the epoch');
      } else if (runner.trigger(epoch, checkpointId, trigger.snapshotType)) {
        beliefs.took(runner.taskId, checkpointId);
      } else {
        this.#cannotTake(runner, trigger, `the task is ${runner.phase}`);
      }
    }
  }

  /** A checkpoint this worker acknowledged was committed. */
  complete(complete: CheckpointComplete__Output): void {
    for (const runner of this.#o.runners.values()) runner.complete(complete.checkpointId);
    this.#o.events.emit('complete', complete);
  }

  /** Checkpoints of the current epoch aborted. */
  abort(abort: CheckpointAbort__Output, range: AbortRange): void {
    this.#o.batcher.discard(range.checkpointId, range.upTo);
    for (const runner of this.#o.runners.values()) runner.abort(range.checkpointId, range.upTo);
    this.#o.events.emit('abort', abort);
  }

  /** Advisory: the restore that follows a recovery comes in the session. */
  recover(recover: Recover__Output): void {
    const current = this.#o.beliefs.epoch;
    this.#o.logger.debug({ epoch: recover.epoch, checkpointId: recover.checkpointId, current }, 'recover broadcast');
    if (recover.epoch > current) this.#o.events.emit('recover', recover);
  }

  /**
   * A source declines a trigger it cannot take, once per id, when the
   * coordinator may still wait for it: the checkpoint aborts now instead of
   * at its timeout. Otherwise the trigger is only dropped.
   */
  #cannotTake(runner: TaskRunner, trigger: Trigger__Output, why: string): void {
    const { epoch, checkpointId, term } = trigger;
    if (!this.#o.beliefs.mayDecline(checkpointId)) {
      this.#o.drops.drop({ kind: 'trigger', reason: 'duplicate', term, epoch, checkpointId });
      return;
    }
    this.#o.logger.debug({ taskId: runner.taskId, checkpointId, epoch, why }, 'trigger declined');
    const message = `trigger of checkpoint ${checkpointId} cannot be taken: ${why}`;
    this.#o.batcher.add(checkpointId, epoch, { kind: 'decline', taskId: runner.taskId, message });
  }
}
