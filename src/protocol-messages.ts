/**
 * The messages of the ckpt.v1 contract that only the SDK, the coordinator
 * and their tests handle: a worker's session and acknowledgements, the
 * NATS control messages (`bus.proto`), the etcd records (`storage.proto`)
 * and the grpc-js service types. Exported from `ckpt/internal`, not from
 * the package root (see `api-messages.ts` for the user's messages).
 */
export { ManifestCompression, type ManifestCompression__Output } from './gen/ckpt/v1/ManifestCompression.js';
export type { TaskHealth, TaskHealth__Output } from './gen/ckpt/v1/TaskHealth.js';
export type {
  AcknowledgeCheckpointRequest,
  AcknowledgeCheckpointRequest__Output,
} from './gen/ckpt/v1/AcknowledgeCheckpointRequest.js';
export type {
  AcknowledgeCheckpointResponse,
  AcknowledgeCheckpointResponse__Output,
} from './gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
export type {
  DeclineCheckpointRequest,
  DeclineCheckpointRequest__Output,
} from './gen/ckpt/v1/DeclineCheckpointRequest.js';
export type {
  DeclineCheckpointResponse,
  DeclineCheckpointResponse__Output,
} from './gen/ckpt/v1/DeclineCheckpointResponse.js';
export type { TaskDecline, TaskDecline__Output } from './gen/ckpt/v1/TaskDecline.js';
export type { AttachRequest, AttachRequest__Output } from './gen/ckpt/v1/AttachRequest.js';
export type { AttachResponse, AttachResponse__Output } from './gen/ckpt/v1/AttachResponse.js';
export type { WorkerHello, WorkerHello__Output } from './gen/ckpt/v1/WorkerHello.js';
export type { Heartbeat, Heartbeat__Output } from './gen/ckpt/v1/Heartbeat.js';
export type { TasksReady, TasksReady__Output } from './gen/ckpt/v1/TasksReady.js';
export type { TaskFailure, TaskFailure__Output } from './gen/ckpt/v1/TaskFailure.js';
export type { SessionAcknowledge, SessionAcknowledge__Output } from './gen/ckpt/v1/SessionAcknowledge.js';
export type { SessionDecline, SessionDecline__Output } from './gen/ckpt/v1/SessionDecline.js';
export type { SessionResult, SessionResult__Output } from './gen/ckpt/v1/SessionResult.js';
export type { Welcome, Welcome__Output } from './gen/ckpt/v1/Welcome.js';
export type { StartCommand, StartCommand__Output } from './gen/ckpt/v1/StartCommand.js';
export type { RestoreCommand, RestoreCommand__Output } from './gen/ckpt/v1/RestoreCommand.js';
export type { JobCanceledCommand, JobCanceledCommand__Output } from './gen/ckpt/v1/JobCanceledCommand.js';
export type { Trigger, Trigger__Output } from './gen/ckpt/v1/Trigger.js';
export type { Barrier, Barrier__Output } from './gen/ckpt/v1/Barrier.js';
export type { CheckpointComplete, CheckpointComplete__Output } from './gen/ckpt/v1/CheckpointComplete.js';
export type { CheckpointAbort, CheckpointAbort__Output } from './gen/ckpt/v1/CheckpointAbort.js';
export type { Recover, Recover__Output } from './gen/ckpt/v1/Recover.js';
export type { ManifestRoot, ManifestRoot__Output } from './gen/ckpt/v1/ManifestRoot.js';
export type { ManifestPart, ManifestPart__Output } from './gen/ckpt/v1/ManifestPart.js';
export type { StoredJob, StoredJob__Output } from './gen/ckpt/v1/StoredJob.js';
// Renamed: the root's `ErrorReason` (reasons without the `ERROR_REASON_`
// prefix), the SDK's `SourcePosition` and the client classes take the
// plain names.
export {
  ErrorReason as WireErrorReason,
  type ErrorReason__Output as WireErrorReason__Output,
} from './gen/ckpt/v1/ErrorReason.js';
export type {
  SourcePosition as WireSourcePosition,
  SourcePosition__Output as WireSourcePosition__Output,
} from './gen/ckpt/v1/SourcePosition.js';
export type {
  CoordinatorClient as GrpcCoordinatorClient,
  CoordinatorDefinition,
  CoordinatorHandlers,
} from './gen/ckpt/v1/Coordinator.js';
export type {
  CheckpointQueryClient as GrpcQueryClient,
  CheckpointQueryDefinition,
  CheckpointQueryHandlers,
} from './gen/ckpt/v1/CheckpointQuery.js';
