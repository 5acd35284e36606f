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
import type { AccessControl } from './access-control.js';
import { unary, type AccessRule } from './handlers.js';

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
  access: AccessControl,
  limits: AttachLimits,
): CoordinatorHandlers {
  const operate: AccessRule<{ jobId: string }> = { action: 'operate', job: (r) => r.jobId };
  const work: AccessRule<{ jobId: string }> = { action: 'work', job: (r) => r.jobId };
  const read: AccessRule<{ jobId: string }> = { action: 'read', job: (r) => r.jobId };
  return {
    SubmitJob: unary(access, { action: 'operate', job: (r) => r.spec?.jobId ?? '' }, async (req) =>
      coordinators.current(req.spec?.jobId ?? '').submitJob(req.spec, {
        savepoint: req.fromSavepoint,
        allowNonRestoredState: req.allowNonRestoredState === true,
      }),
    ),
    GetJob: unary(access, read, (req) => ({ job: coordinators.current(req.jobId).getJob(req.jobId) })),
    CancelJob: unary(access, operate, async (req) => ({
      job: await coordinators.current(req.jobId).cancelJob(req.jobId),
    })),
    AcknowledgeCheckpoint: unary(access, work, (req) => coordinators.current(req.jobId).acknowledge(req)),
    DeclineCheckpoint: unary(access, work, (req) => {
      coordinators.current(req.jobId).decline(req);
      return {};
    }),
    TriggerCheckpoint: unary(access, operate, async (req) => {
      const type = snapshotType(req.snapshotType);
      return {
        checkpoint: await coordinators.current(req.jobId).triggerCheckpoint(req.jobId, type, req.wait === true),
      };
    }),
    RestoreJob: unary(access, operate, async (req) =>
      coordinators.current(req.jobId).restoreJob(req.jobId, req.checkpointId),
    ),
    TriggerSavepoint: unary(access, operate, async (req) =>
      coordinators.current(req.jobId).savepoints.trigger(req.jobId, req.stop === true),
    ),
    ListSavepoints: unary(access, read, async (req) => ({
      savepoints: await coordinators.current(req.jobId).savepoints.list(req.jobId),
    })),
    DeleteSavepoint: unary(access, { action: 'operate', job: (r) => r.ref?.jobId ?? '' }, async (req) => ({
      deleted: await coordinators.current(req.ref?.jobId ?? '').savepoints.delete(req.ref),
    })),
    CollectGarbage: unary(access, operate, async (req) => {
      const dryRun = req.dryRun === true;
      return garbageResponse(await coordinators.current(req.jobId).collectGarbage(req.jobId, dryRun), dryRun);
    }),
    Attach: attachHandler(coordinators, access, limits),
  };
}
