/**
 * The `ckpt.v1.Coordinator` service: job submission, acknowledgements,
 * declines, manual triggers, restores and garbage collection of state,
 * over the `Coordinator` class.
 */
import type { CoordinatorHandlers } from '../gen/ckpt/v1/Coordinator.js';
import type { SnapshotType__Output } from '../gen/ckpt/v1/SnapshotType.js';
import type { CheckpointInit } from '../core/checkpoint.js';
import { CkptError } from '../core/errors.js';
import { attachHandler, type AttachLimits } from './attach.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import { garbageResponse } from './garbage-response.js';
import { unary, type AuthCheck } from './handlers.js';

function snapshotType(value: SnapshotType__Output | number): CheckpointInit['snapshotType'] | undefined {
  switch (value) {
    case 'SNAPSHOT_TYPE_UNSPECIFIED':
      return undefined;
    case 'SNAPSHOT_TYPE_FULL':
    case 'SNAPSHOT_TYPE_INCREMENTAL':
      return value;
    default:
      throw new CkptError('MALFORMED', `snapshot_type ${String(value)} is not a snapshot type`);
  }
}

/** The handlers of `ckpt.v1.Coordinator`; each call goes to the leader's coordinator of the moment. */
export function coordinatorHandlers(
  coordinators: CoordinatorProvider,
  auth: AuthCheck,
  limits: AttachLimits,
): CoordinatorHandlers {
  return {
    SubmitJob: unary(auth, async (req) =>
      coordinators.current().submitJob(req.spec, {
        savepoint: req.fromSavepoint,
        allowNonRestoredState: req.allowNonRestoredState === true,
      }),
    ),
    GetJob: unary(auth, (req) => ({ job: coordinators.current().getJob(req.jobId) })),
    CancelJob: unary(auth, async (req) => ({ job: await coordinators.current().cancelJob(req.jobId) })),
    AcknowledgeCheckpoint: unary(auth, (req) => coordinators.current().acknowledge(req)),
    DeclineCheckpoint: unary(auth, (req) => {
      coordinators.current().decline(req);
      return {};
    }),
    TriggerCheckpoint: unary(auth, async (req) => {
      const type = snapshotType(req.snapshotType);
      return { checkpoint: await coordinators.current().triggerCheckpoint(req.jobId, type, req.wait === true) };
    }),
    RestoreJob: unary(auth, async (req) => coordinators.current().restoreJob(req.jobId, req.checkpointId)),
    TriggerSavepoint: unary(auth, async (req) =>
      coordinators.current().savepoints.trigger(req.jobId, req.stop === true),
    ),
    ListSavepoints: unary(auth, async (req) => ({
      savepoints: await coordinators.current().savepoints.list(req.jobId),
    })),
    DeleteSavepoint: unary(auth, async (req) => ({ deleted: await coordinators.current().savepoints.delete(req.ref) })),
    CollectGarbage: unary(auth, async (req) => {
      const dryRun = req.dryRun === true;
      return garbageResponse(await coordinators.current().collectGarbage(req.jobId, dryRun), dryRun);
    }),
    Attach: attachHandler(coordinators, auth, limits),
  };
}
