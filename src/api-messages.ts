/**
 * The messages of the ckpt.v1 contract a user of the package meets: job
 * specs and their state, checkpoints and manifests, and the requests and
 * responses of the job and query calls of `CoordinatorClient` and
 * `QueryClient`. Enums come as values too (`CheckpointState.CHECKPOINT_STATE_COMPLETED`).
 * The worker protocol, the NATS control messages and the etcd records are
 * behind `ckpt/internal` (`protocol-messages.ts`): TypeScript workers speak
 * them through the SDK.
 */
export { AbortReason, type AbortReason__Output } from './gen/ckpt/v1/AbortReason.js';
export { CheckpointMode, type CheckpointMode__Output } from './gen/ckpt/v1/CheckpointMode.js';
export { CheckpointState, type CheckpointState__Output } from './gen/ckpt/v1/CheckpointState.js';
export { JobAttempt, type JobAttempt__Output } from './gen/ckpt/v1/JobAttempt.js';
export { JobCheckpointing, type JobCheckpointing__Output } from './gen/ckpt/v1/JobCheckpointing.js';
export { JobState, type JobState__Output } from './gen/ckpt/v1/JobState.js';
export { SnapshotType, type SnapshotType__Output } from './gen/ckpt/v1/SnapshotType.js';
export type { AdaptiveInterval, AdaptiveInterval__Output } from './gen/ckpt/v1/AdaptiveInterval.js';
export type { CheckpointPolicy, CheckpointPolicy__Output } from './gen/ckpt/v1/CheckpointPolicy.js';
export type { CheckpointSummary, CheckpointSummary__Output } from './gen/ckpt/v1/CheckpointSummary.js';
export type { JobInfo, JobInfo__Output } from './gen/ckpt/v1/JobInfo.js';
export type { JobSpec, JobSpec__Output } from './gen/ckpt/v1/JobSpec.js';
export type { Manifest, Manifest__Output } from './gen/ckpt/v1/Manifest.js';
export type { RestorePoint, RestorePoint__Output } from './gen/ckpt/v1/RestorePoint.js';
export type { SnapshotMetrics, SnapshotMetrics__Output } from './gen/ckpt/v1/SnapshotMetrics.js';
export type { StateHandle, StateHandle__Output } from './gen/ckpt/v1/StateHandle.js';
export type { TaskSnapshot, TaskSnapshot__Output } from './gen/ckpt/v1/TaskSnapshot.js';
export type { TaskSpec, TaskSpec__Output } from './gen/ckpt/v1/TaskSpec.js';
export type { SubmitJobRequest, SubmitJobRequest__Output } from './gen/ckpt/v1/SubmitJobRequest.js';
export type { SubmitJobResponse, SubmitJobResponse__Output } from './gen/ckpt/v1/SubmitJobResponse.js';
export type { GetJobRequest, GetJobRequest__Output } from './gen/ckpt/v1/GetJobRequest.js';
export type { GetJobResponse, GetJobResponse__Output } from './gen/ckpt/v1/GetJobResponse.js';
export type { CancelJobRequest, CancelJobRequest__Output } from './gen/ckpt/v1/CancelJobRequest.js';
export type { CancelJobResponse, CancelJobResponse__Output } from './gen/ckpt/v1/CancelJobResponse.js';
export type {
  TriggerCheckpointRequest,
  TriggerCheckpointRequest__Output,
} from './gen/ckpt/v1/TriggerCheckpointRequest.js';
export type {
  TriggerCheckpointResponse,
  TriggerCheckpointResponse__Output,
} from './gen/ckpt/v1/TriggerCheckpointResponse.js';
export type { RestoreJobRequest, RestoreJobRequest__Output } from './gen/ckpt/v1/RestoreJobRequest.js';
export type { RestoreJobResponse, RestoreJobResponse__Output } from './gen/ckpt/v1/RestoreJobResponse.js';
export type { ListJobsRequest, ListJobsRequest__Output } from './gen/ckpt/v1/ListJobsRequest.js';
export type { ListJobsResponse, ListJobsResponse__Output } from './gen/ckpt/v1/ListJobsResponse.js';
export type { ListCheckpointsRequest, ListCheckpointsRequest__Output } from './gen/ckpt/v1/ListCheckpointsRequest.js';
export type {
  ListCheckpointsResponse,
  ListCheckpointsResponse__Output,
} from './gen/ckpt/v1/ListCheckpointsResponse.js';
export type { GetCheckpointRequest, GetCheckpointRequest__Output } from './gen/ckpt/v1/GetCheckpointRequest.js';
export type { GetCheckpointResponse, GetCheckpointResponse__Output } from './gen/ckpt/v1/GetCheckpointResponse.js';
export type {
  WatchCheckpointsRequest,
  WatchCheckpointsRequest__Output,
} from './gen/ckpt/v1/WatchCheckpointsRequest.js';
export type {
  WatchCheckpointsResponse,
  WatchCheckpointsResponse__Output,
} from './gen/ckpt/v1/WatchCheckpointsResponse.js';
