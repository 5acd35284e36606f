/**
 * Hung tasks, judged from what their workers report in heartbeats
 * (`ckpt.v1.TaskHealth`): a call of the task's code that does not return,
 * a snapshot that runs too long, or a task its worker stopped reporting
 * while the worker itself still heartbeats. Pure functions of the policy
 * and the reports.
 */
import type { TaskHealth__Output } from '../gen/ckpt/v1/TaskHealth.js';
import type { ResolvedPolicy } from './policy.js';

type Limits = Pick<ResolvedPolicy, 'snapshotTimeoutMs' | 'taskStallTimeoutMs'>;

/** Why the task of `health` is hung, or undefined while it is not. */
export function hungReason(limits: Limits, health: TaskHealth__Output): string | undefined {
  if (health.busyMs > limits.taskStallTimeoutMs) {
    return `a call of its code has not returned for ${health.busyMs} ms (task_stall_timeout_ms ${limits.taskStallTimeoutMs})`;
  }
  if (health.snapshotMs > limits.snapshotTimeoutMs) {
    return (
      `its snapshot of checkpoint ${health.snapshotCheckpointId} has run ${health.snapshotMs} ms ` +
      `(snapshot_timeout_ms ${limits.snapshotTimeoutMs})`
    );
  }
  return undefined;
}

/**
 * The first of `taskIds` that its worker, which reports task health, has
 * not reported for longer than the stall timeout, with the reason; tasks
 * never reported count from `sinceMs`, when the worker began reporting.
 */
export function silentTask(
  limits: Limits,
  taskIds: readonly string[],
  reportedMs: ReadonlyMap<string, number>,
  sinceMs: number,
  nowMs: number,
): { taskId: string; why: string } | undefined {
  for (const taskId of taskIds) {
    const silentMs = nowMs - (reportedMs.get(taskId) ?? sinceMs);
    if (silentMs > limits.taskStallTimeoutMs) {
      const why = `its worker still heartbeats but has not reported it for ${silentMs} ms (task_stall_timeout_ms ${limits.taskStallTimeoutMs})`;
      return { taskId, why };
    }
  }
  return undefined;
}
