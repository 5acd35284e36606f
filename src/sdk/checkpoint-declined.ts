/**
 * How a task declines one checkpoint without failing.
 */

/**
 * Thrown by a task's `snapshot` hook to decline that checkpoint: the worker
 * sends a decline with this message, the coordinator aborts the checkpoint
 * with reason DECLINED, and the task goes on processing (any other error
 * thrown by `snapshot` also declines, but fails the task as well, and the
 * job recovers).
 */
export class CheckpointDeclinedError extends Error {
  override readonly name = 'CheckpointDeclinedError';
}
