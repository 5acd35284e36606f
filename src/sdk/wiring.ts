/**
 * Checks that a worker's tasks fit the job's graph and policy before
 * anything runs.
 */
import { CkptError } from '../core/errors.js';
import type { CheckpointMode } from '../gen/ckpt/v1/CheckpointMode.js';
import type { AlignmentMode } from './alignment.js';
import { assertTasksInGraph, type JobGraph } from './graph.js';
import { isSourceTask, type AnyTask } from './task.js';

/** The alignment mode of a policy's checkpoint mode (ALIGNED when unspecified). */
export function alignmentModeOf(mode: CheckpointMode | null | undefined): AlignmentMode {
  switch (mode) {
    case 'CHECKPOINT_MODE_AT_LEAST_ONCE':
    case 3:
      return 'at-least-once';
    case 'CHECKPOINT_MODE_UNALIGNED':
    case 2:
      return 'unaligned';
    default:
      return 'aligned';
  }
}

/**
 * Throws `CkptError` when a task is not in the graph (UNKNOWN_TASK) or a
 * source task has inputs in the graph (MALFORMED).
 */
export function checkWiring(graph: JobGraph, tasks: ReadonlyMap<string, AnyTask>): void {
  assertTasksInGraph(graph, tasks.keys());
  for (const [taskId, task] of tasks) {
    if (isSourceTask(task) && graph.inputsOf(taskId).length > 0) {
      throw new CkptError(
        'MALFORMED',
        `task ${taskId} is a source but has inputs ${graph.inputsOf(taskId).join(', ')} in job ${graph.jobId}`,
        { jobId: graph.jobId, taskId },
      );
    }
  }
}
