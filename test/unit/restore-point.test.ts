import test from 'ava';
import { CkptError } from '../../src/core/errors.js';
import { JobTracker } from '../../src/core/job-tracker.js';
import { recoveryCheckpointId, restorePointInForce, restoreTarget } from '../../src/core/restore-point.js';
import { validateJobSpec } from '../../src/core/validate.js';

function refusal(fn: () => unknown): { reason: string; message: string; checkpointId?: number } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CkptError) return { reason: err.reason, message: err.message, ...err.ids };
    throw err;
  }
  return { reason: 'no error', message: '' };
}

test('recoveries restore from the restore point until a checkpoint is committed in its epoch or later', (t) => {
  const point = { checkpointId: 3, epoch: 5 };
  t.is(recoveryCheckpointId({ checkpointId: 9, epoch: 4 }, point), 3, 'latest committed before the restore');
  t.true(restorePointInForce({ checkpointId: 9, epoch: 4 }, point));
  t.is(recoveryCheckpointId({ checkpointId: 10, epoch: 5 }, point), 10, 'committed in the restore epoch');
  t.is(recoveryCheckpointId({ checkpointId: 12, epoch: 7 }, point), 12, 'committed in a later epoch');
  t.false(restorePointInForce({ checkpointId: 12, epoch: 7 }, point));
  t.is(recoveryCheckpointId({ checkpointId: 9, epoch: 4 }, undefined), 9, 'no restore point: the latest');
  t.is(recoveryCheckpointId({ checkpointId: 0, epoch: 0 }, undefined), 0);
});

test('a restore target is a retained checkpoint, 0 meaning the latest', (t) => {
  t.is(restoreTarget('j', 4, 6, [4, 5, 6]), 4);
  t.is(restoreTarget('j', 0, 6, [4, 5, 6]), 6);
  t.like(
    refusal(() => restoreTarget('j', 2, 6, [4, 5, 6])),
    {
      reason: 'UNKNOWN_CHECKPOINT',
      message: 'UNKNOWN_CHECKPOINT: job j has no retained checkpoint 2 to restore; retained: 4, 5, 6',
      checkpointId: 2,
    },
  );
  t.like(
    refusal(() => restoreTarget('j', 0, 0, [])),
    {
      reason: 'UNKNOWN_CHECKPOINT',
      message: 'UNKNOWN_CHECKPOINT: job j has no committed checkpoint to restore; retained: none',
    },
  );
});

function runningTracker(): JobTracker {
  const spec = validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'src' }], policy: { retained: 3 } });
  const tracker = new JobTracker({
    spec,
    state: 'JOB_STATE_RUNNING',
    createdAtMs: 0,
    epoch: 2,
    latestCheckpointId: 6,
    latestCheckpointEpoch: 1,
    idFloor: 7,
    retainedCheckpointIds: [4, 5, 6],
    attempt: 'restoring',
  });
  tracker.ids.reserved(tracker.ids.floorToReserve(10));
  tracker.attach('w', ['src']);
  tracker.markReady('w', tracker.epoch, ['src']);
  return tracker;
}

test('the tracker keeps the restore point from its epoch until the next commit', (t) => {
  const tracker = runningTracker();
  t.is(tracker.checkRestore(4), 4);
  t.is(tracker.recoveryCheckpointId, 6);
  tracker.enterEpoch(3, 4);
  t.deepEqual(tracker.restorePoint, { checkpointId: 4, epoch: 3 });
  t.is(tracker.recoveryCheckpointId, 4);
  t.is(tracker.latestCheckpointId, 6, 'latest does not move back');
  tracker.enterEpoch(4);
  t.is(tracker.recoveryCheckpointId, 4, 'a plain recovery keeps it');
  tracker.markReady('w', 4, ['src']);
  const next = tracker.trigger(0, true);
  t.true(next.id > 6);
  tracker.acknowledge(
    { epoch: 4, checkpointId: next.id, workerId: 'w' },
    [{ taskId: 'src', state: null, positions: [], metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' }],
    0,
  );
  next.beginCommit();
  tracker.complete(next, 1, 10, 0);
  t.is(tracker.restorePoint, undefined);
  t.is(tracker.recoveryCheckpointId, next.id);
});

test('a canceled job cannot be restored', (t) => {
  const tracker = runningTracker();
  tracker.cancel();
  t.is(refusal(() => tracker.checkRestore(4)).reason, 'JOB_CANCELED');
});

test('a tracker loaded with a restore point applies the same rule', (t) => {
  const spec = validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'src' }] });
  const init = {
    spec,
    state: 'JOB_STATE_RUNNING' as const,
    createdAtMs: 0,
    epoch: 4,
    latestCheckpointId: 6,
    idFloor: 1000,
    retainedCheckpointIds: [2, 6],
    restorePoint: { checkpointId: 2, epoch: 3 },
    attempt: 'resuming' as const,
  };
  t.is(new JobTracker({ ...init, latestCheckpointEpoch: 2 }).recoveryCheckpointId, 2);
  t.is(new JobTracker({ ...init, latestCheckpointEpoch: 3 }).recoveryCheckpointId, 6);
});
