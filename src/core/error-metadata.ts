/**
 * The trailing metadata of a refusal (coordinator.proto): the same keys for
 * the coordinator, which writes them, and every client, which reads them.
 */
export const ERROR_METADATA = {
  /** The reason, an `ErrorReason` name without its prefix. */
  reason: 'ckpt-reason',
  /** The job id the error concerns. */
  jobId: 'ckpt-job-id',
  /** The task id the error concerns. */
  taskId: 'ckpt-task-id',
  /** The checkpoint id the error concerns. */
  checkpointId: 'ckpt-checkpoint-id',
  /** The epoch the error concerns. */
  epoch: 'ckpt-epoch',
  /** "true" when the same request may succeed later. */
  retryable: 'ckpt-retryable',
  /** With NOT_LEADER: the leader's address, when the refusing coordinator knows it. */
  leader: 'ckpt-leader',
} as const;
