/**
 * The input side of one task's runner, built from its options: the aligner
 * of its input edges (none for a source), the lane of a source's messages,
 * the timer of aligned checkpoints that wait too long, the credits it
 * sends its producers (none without inputs or a flow-control window), and
 * the intake through which its loop takes from them.
 */
import { InputAligner } from './alignment.js';
import { AlignmentTimeouts } from './alignment-timeouts.js';
import { ReaderCredits } from './flow-control.js';
import type { RunnerOptions } from './runner-options.js';
import { SourceLane } from './source-lane.js';
import type { DataRecord } from './task.js';
import { TaskIntake } from './task-intake.js';

/** The parts of a task's input side. */
export interface TaskInputs {
  credits: ReaderCredits | undefined;
  aligner: InputAligner<DataRecord> | undefined;
  sourceLane: SourceLane;
  timeouts: AlignmentTimeouts;
  intake: TaskIntake;
}

/** The input side of the task of `options`; `wake` wakes its loop when there is something to take. */
export function taskInputs(
  options: Pick<
    RunnerOptions,
    | 'taskId'
    | 'inputs'
    | 'mode'
    | 'alignedCheckpointTimeoutMs'
    | 'plane'
    | 'maxQueuedSourceMessages'
    | 'flowControlWindow'
  >,
  wake: () => void,
): TaskInputs {
  const credits =
    options.inputs.length > 0 && options.flowControlWindow > 0
      ? new ReaderCredits(options.taskId, options.inputs, options.flowControlWindow, (from, to, credit) =>
          options.plane.publishCredit(from, to, credit),
        )
      : undefined;
  const aligner =
    options.inputs.length > 0
      ? new InputAligner<DataRecord>(options.inputs, options.mode, Date.now, options.alignedCheckpointTimeoutMs ?? 0)
      : undefined;
  const sourceLane = new SourceLane(options.maxQueuedSourceMessages, wake);
  const timeouts = new AlignmentTimeouts({ nextTimeout: () => aligner?.nextTimeout(), wake });
  const intake = new TaskIntake({
    aligner,
    sourceLane,
    flow: options.plane.flowOf(options.taskId),
    timeouts,
  });
  return { credits, aligner, sourceLane, timeouts, intake };
}
