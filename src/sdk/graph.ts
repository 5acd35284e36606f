/**
 * The job graph as a worker needs it: each task's inputs (upstream tasks)
 * and outputs (downstream tasks), from the job spec the welcome carries.
 */
import { CkptError } from '../core/errors.js';
import { allKeyGroups, KEY_GROUPS, keyGroupRange, operatorTasks, type KeyGroupRange } from '../core/key-groups.js';
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';

/** The inputs and outputs of every task of a job. */
export interface JobGraph {
  readonly jobId: string;
  /** Every task id of the job, sorted. */
  readonly taskIds: readonly string[];
  /** The distinct inputs of `taskId`, in spec order; empty for a source. */
  inputsOf(taskId: string): readonly string[];
  /** The tasks naming `taskId` among their inputs, sorted; empty for a sink. */
  outputsOf(taskId: string): readonly string[];
  /** True when the job has a task `taskId`. */
  has(taskId: string): boolean;
  /**
   * The key groups `taskId`'s keyed state owns: its share of its operator's
   * (the tasks with the same `operator` label, by sorted id), or every
   * group for a task without that label or beyond `KEY_GROUPS` tasks.
   */
  keyGroupsOf(taskId: string): KeyGroupRange;
}

/** Builds the graph of `spec`. */
export function jobGraph(spec: JobSpec__Output): JobGraph {
  const inputs = new Map<string, string[]>();
  const outputs = new Map<string, string[]>();
  for (const task of spec.tasks) {
    inputs.set(task.taskId, [...new Set(task.inputs)]);
    outputs.set(task.taskId, outputs.get(task.taskId) ?? []);
  }
  for (const [taskId, ins] of inputs) {
    for (const input of ins) {
      const list = outputs.get(input) ?? [];
      list.push(taskId);
      outputs.set(input, list);
    }
  }
  for (const list of outputs.values()) list.sort();
  const operators = operatorTasks(spec);
  return {
    jobId: spec.jobId,
    taskIds: [...inputs.keys()].sort(),
    inputsOf: (taskId) => inputs.get(taskId) ?? [],
    outputsOf: (taskId) => outputs.get(taskId) ?? [],
    has: (taskId) => inputs.has(taskId),
    keyGroupsOf: (taskId) => {
      const tasks = operators.get(taskId) ?? [taskId];
      const index = tasks.indexOf(taskId);
      return index < 0 || tasks.length > KEY_GROUPS ? allKeyGroups() : keyGroupRange(index, tasks.length);
    },
  };
}

/**
 * Throws `CkptError('UNKNOWN_TASK')` naming the first of `taskIds` that
 * the job does not have.
 */
export function assertTasksInGraph(graph: JobGraph, taskIds: Iterable<string>): void {
  for (const taskId of taskIds) {
    if (!graph.has(taskId)) {
      throw new CkptError('UNKNOWN_TASK', `job ${graph.jobId} has no task ${taskId}`, {
        jobId: graph.jobId,
        taskId,
      });
    }
  }
}
