/**
 * What a task's loop takes next from its inputs: the aligner's next action
 * (a record to process, a snapshot, in-flight records, a finish or cancel)
 * or, for a source, the next message it read.
 *
 * Flow control (PROTOCOL.md §7.5): while an output of the task is over its
 * window (`ProducerFlow.over > 0`), the task takes no input, no record of
 * its inputs and no message of its source, until a credit makes room; what
 * is not a record goes on, so checkpoints are taken (and time out) as
 * usual. Asking the aligner is also when an aligned checkpoint that waited
 * too long times out, so the alignment timer is set again after each ask.
 */
import type { AlignAction, InputAligner } from './alignment.js';
import type { AlignmentTimeouts } from './alignment-timeouts.js';
import type { ProducerFlow } from './data-plane.js';
import type { SourceLane } from './source-lane.js';
import type { DataRecord, SourceMessage } from './task.js';

/** One thing a task takes: an action of its aligner or a message of its source. */
export type Intake =
  { kind: 'action'; action: AlignAction<DataRecord> } | { kind: 'source'; message: SourceMessage<unknown> };

/** What an intake reads from. */
export interface TaskIntakeOptions {
  /** The task's inputs; undefined for a source. */
  aligner: InputAligner<DataRecord> | undefined;
  /** The source's messages (empty for a task with inputs). */
  sourceLane: SourceLane;
  /** The flow control of the task's outputs. */
  flow: ProducerFlow;
  timeouts: AlignmentTimeouts;
}

/** The input side of one task's loop, paused while an output is over its window. */
export class TaskIntake {
  readonly #o: TaskIntakeOptions;

  /** See `TaskIntakeOptions`. */
  constructor(options: TaskIntakeOptions) {
    this.#o = options;
  }

  /** True while an output is over its window: the task takes no input. */
  get paused(): boolean {
    return this.#o.flow.over > 0;
  }

  /** What the task takes next, or undefined when nothing is ready. */
  next(): Intake | undefined {
    const { aligner, timeouts } = this.#o;
    if (this.paused) {
      // An output is over its window: no input is taken, but checkpoints go on (and time out).
      const action = aligner?.nextControl();
      timeouts.asked();
      return action === undefined ? undefined : { kind: 'action', action };
    }
    const action = aligner?.next();
    timeouts.asked();
    if (action !== undefined) return { kind: 'action', action };
    const message = this.#o.sourceLane.shift();
    return message === undefined ? undefined : { kind: 'source', message };
  }
}
