import test from 'ava';
import { runningTracker, SOURCE_AND_SINK } from '../helpers/job-tracker.js';
import { CkptError } from '../../src/core/errors.js';
import { JobTracker } from '../../src/core/job-tracker.js';
import { validateJobSpec } from '../../src/core/validate.js';
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';

function tracker(
  policy: CheckpointPolicy = {},
  extra: Partial<Omit<ConstructorParameters<typeof JobTracker>[0], 'attempt'>> = {},
): JobTracker {
  return runningTracker({ ...SOURCE_AND_SINK, policy }, extra);
}

/** Attaches tasks and reports them ready, as a worker does after its restore. */
function run(j: JobTracker, workerId: string, taskIds: string[]): boolean {
  j.attach(workerId, taskIds);
  return j.markReady(workerId, j.epoch, taskIds);
}

function snap(taskId: string): TaskSnapshot__Output {
  return {
    taskId,
    state: {
      uri: `file:///state/${taskId}`,
      sizeBytes: 1,
      checksum: `sha256:${'a'.repeat(64)}`,
      shared: [],
      compression: 'STATE_COMPRESSION_UNSPECIFIED',
      rawSizeBytes: 0,
      inFlightRecords: false,
    },
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    positions: [],
    metrics: null,
  };
}

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CkptError ? err.reason : `not a CkptError: ${String(err)}`;
  }
  return 'no error';
}

test('triggers need every task attached and respect max concurrent', (t) => {
  const j = tracker({ maxConcurrent: 1 });
  t.is(
    reason(() => j.trigger(0, true)),
    'TASKS_NOT_READY',
  );
  j.attach('w1', ['src']);
  t.is(
    reason(() => j.trigger(0, true)),
    'TASKS_NOT_READY',
  );
  j.attach('w2', ['sink']);
  t.is(
    reason(() => j.trigger(0, true)),
    'TASKS_NOT_READY',
    'attached but not restored',
  );
  t.false(j.markReady('w1', 1, ['src']));
  t.false(j.markReady('w2', 0, ['sink']), 'a ready report of another epoch is ignored');
  t.true(j.markReady('w2', 1, ['sink']));
  t.is(j.attempt, 'running');
  const c = j.trigger(0, true);
  t.is(c.id, 1);
  t.is(j.checkpointing, 'JOB_CHECKPOINTING_CHECKPOINTING');
  t.is(
    reason(() => j.trigger(1, true)),
    'TOO_MANY_PENDING',
  );
});

test('attach is all or none and a task has one owner', (t) => {
  const j = tracker();
  j.attach('w1', ['src']);
  t.is(
    reason(() => j.attach('w2', ['sink', 'src'])),
    'TASK_ALREADY_ATTACHED',
  );
  t.like(
    t.throws(() => j.attach('w2', ['src'])),
    { retryable: true },
    'the task frees when the session holding it ends',
  );
  t.is(j.attachedTasks, 1);
  t.is(
    reason(() => j.attach('w2', ['nope'])),
    'UNKNOWN_TASK',
  );
  t.deepEqual(j.detach('w1'), ['src']);
  t.is(j.attachedTasks, 0);
});

test('acknowledgements are checked against epoch, checkpoint, and the attaching worker', (t) => {
  const j = tracker();
  run(j, 'w1', ['src']);
  run(j, 'w2', ['sink']);
  const c = j.trigger(0, false);
  t.is(
    reason(() => j.acknowledge({ epoch: 2, checkpointId: c.id, workerId: 'w1' }, [snap('src')], 0)),
    'STALE_EPOCH',
  );
  t.is(
    reason(() => j.acknowledge({ epoch: 1, checkpointId: 99, workerId: 'w1' }, [snap('src')], 0)),
    'UNKNOWN_CHECKPOINT',
  );
  t.is(
    reason(() => j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w2' }, [snap('src')], 0)),
    'TASK_NOT_ATTACHED',
  );
  t.is(
    reason(() => j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w1' }, [snap('ghost')], 0)),
    'UNKNOWN_TASK',
  );
  const big = snap('src');
  big.state = {
    uri: `file:///${'x'.repeat(5000)}`,
    sizeBytes: 1,
    checksum: `sha256:${'a'.repeat(64)}`,
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
    inFlightRecords: false,
  };
  t.is(
    reason(() => j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w1' }, [big], 0)),
    'OVERSIZED',
  );
  t.is(c.acknowledgedTasks, 0);
  j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w1' }, [snap('src')], 0);
  t.is(j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w1' }, [snap('src')], 0).duplicates, 1);
});

test('retention subsumes the oldest beyond the retained count', (t) => {
  const j = tracker({ retained: 2 });
  run(j, 'w', ['src', 'sink']);
  const done: number[] = [];
  for (let i = 0; i < 4; i++) {
    const c = j.trigger(i * 10, false);
    j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w' }, [snap('src'), snap('sink')], 0);
    const subsumed = j.subsumedBy(c.id);
    c.beginCommit();
    j.complete(c, i * 10 + 5, 1, 0);
    done.push(...subsumed);
  }
  t.deepEqual(done, [1, 2]);
  t.deepEqual([...j.retainedCheckpointIds], [3, 4]);
  t.is(j.latestCheckpointId, 4);
  t.is(j.checkpointing, 'JOB_CHECKPOINTING_CHECKPOINTED');
  t.is(
    reason(() => j.acknowledge({ epoch: 1, checkpointId: 4, workerId: 'w' }, [snap('src')], 0)),
    'CHECKPOINT_COMPLETED',
  );
});

test('a completed checkpoint subsumes older pending ones', (t) => {
  const j = tracker({ maxConcurrent: 2 });
  run(j, 'w', ['src', 'sink']);
  const older = j.trigger(0, false);
  const newer = j.trigger(1, false);
  j.acknowledge({ epoch: 1, checkpointId: newer.id, workerId: 'w' }, [snap('src'), snap('sink')], 0);
  newer.beginCommit();
  t.deepEqual(
    j.complete(newer, 2, 1, 0).map((c) => c.id),
    [older.id],
  );
});

test('a checkpoint whose turn to commit comes after a later one completed is subsumed, not committed', (t) => {
  const j = tracker({ maxConcurrent: 2 });
  run(j, 'w', ['src', 'sink']);
  const older = j.trigger(0, false);
  const newer = j.trigger(1, false);
  for (const c of [newer, older]) {
    j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w' }, [snap('src'), snap('sink')], 0);
    c.beginCommit();
  }
  t.is(j.completedBefore(newer), undefined, 'the first in line commits');
  j.complete(newer, 2, 1, 0);
  t.is(j.completedBefore(older), newer.id);
});

test('consecutive failures beyond the tolerable count fail the job; subsumed ones do not count', (t) => {
  const j = tracker({ tolerableFailures: 1, maxConcurrent: 2 });
  run(j, 'w', ['src', 'sink']);
  t.false(j.abort(j.trigger(0, false), 'ABORT_REASON_SUBSUMED', '', 1));
  t.false(j.abort(j.trigger(2, false), 'ABORT_REASON_TIMEOUT', '', 3));
  t.is(j.checkpointing, 'JOB_CHECKPOINTING_IDLE');
  t.true(j.abort(j.trigger(4, false), 'ABORT_REASON_DECLINED', '', 5));
});

test('expired lists pending checkpoints past their deadline', (t) => {
  const j = tracker({ timeoutMs: 100, maxConcurrent: 2 });
  run(j, 'w', ['src', 'sink']);
  const a = j.trigger(0, false);
  j.trigger(50, false);
  t.is(j.nextDeadlineMs(), 100);
  t.deepEqual(j.expired(99), []);
  t.deepEqual(
    j.expired(100).map((c) => c.id),
    [a.id],
  );
});

test('periodic schedule honours interval and minimum pause', (t) => {
  const j = tracker({ intervalMs: 1000, minPauseMs: 500 });
  run(j, 'w', ['src', 'sink']);
  t.is(j.nextPeriodicDueAtMs(), 0);
  const c = j.trigger(0, false);
  j.acknowledge({ epoch: 1, checkpointId: c.id, workerId: 'w' }, [snap('src'), snap('sink')], 0);
  c.beginCommit();
  j.complete(c, 900, 1, 0);
  t.is(j.nextPeriodicDueAtMs(), 1400);
  t.is(tracker().nextPeriodicDueAtMs(), undefined);
});

test('one rule decides whether a checkpoint may start, for manual and periodic triggers alike', (t) => {
  const j = tracker({ intervalMs: 1000, maxConcurrent: 1 });
  t.is(j.triggerRefusal()?.reason, 'TASKS_NOT_READY', 'no task attached');
  t.is(j.nextPeriodicDueAtMs(), undefined);
  run(j, 'w', ['src', 'sink']);
  t.is(j.triggerRefusal(), undefined);
  t.is(j.nextPeriodicDueAtMs(), 0);
  const pending = j.trigger(0, false);
  t.is(j.triggerRefusal()?.reason, 'TOO_MANY_PENDING');
  t.is(j.nextPeriodicDueAtMs(), undefined, 'no periodic trigger while the policy allows no more pending');
  t.is(
    reason(() => j.checkCanTrigger()),
    'TOO_MANY_PENDING',
  );
  j.abort(pending, 'ABORT_REASON_TIMEOUT', 'test', 10);
  t.is(j.triggerRefusal(), undefined);
  j.detach('w');
  t.regex(j.triggerRefusal()?.message ?? '', /2 of 2 tasks are not attached/);
  t.is(j.nextPeriodicDueAtMs(), undefined, 'no periodic trigger while a task is detached');
  j.cancel();
  t.is(j.triggerRefusal()?.reason, 'JOB_CANCELED');
});

test('ids continue from the stored floor and need a reservation', (t) => {
  const spec = validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'a' }] });
  const j = new JobTracker({
    spec,
    state: 'JOB_STATE_RUNNING',
    createdAtMs: 0,
    epoch: 3,
    latestCheckpointId: 40,
    idFloor: 1001,
    retainedCheckpointIds: [40],
    attempt: 'resuming',
  });
  t.true(run(j, 'w', ['a']));
  t.throws(() => j.trigger(0, false), { message: /not reserved/ });
  j.ids.reserved(j.ids.floorToReserve(5));
  t.is(j.trigger(0, false).id, 1001);
});

test('full snapshots every n-th checkpoint', (t) => {
  const j = tracker({ fullEvery: 3, maxConcurrent: 16 });
  run(j, 'w', ['src', 'sink']);
  const types = Array.from({ length: 7 }, (_, i) =>
    j.trigger(i, false).init.snapshotType.replace('SNAPSHOT_TYPE_', ''),
  );
  t.deepEqual(types, ['FULL', 'INCREMENTAL', 'INCREMENTAL', 'FULL', 'INCREMENTAL', 'INCREMENTAL', 'FULL']);
});

test('a canceled job refuses triggers and attaches', (t) => {
  const j = tracker();
  j.cancel();
  t.is(
    reason(() => j.attach('w', ['src'])),
    'JOB_CANCELED',
  );
  t.is(
    reason(() => j.checkCanTrigger()),
    'JOB_CANCELED',
  );
});

test('a new epoch needs every task to restore again; a detached task is no longer ready', (t) => {
  const j = tracker();
  t.true(run(j, 'w', ['src', 'sink']));
  j.enterEpoch(2);
  t.is(j.attempt, 'restoring');
  t.is(
    reason(() => j.checkCanTrigger()),
    'TASKS_NOT_READY',
  );
  t.false(j.markReady('w', 1, ['src', 'sink']), 'the old epoch does not count');
  t.true(j.markReady('w', 2, ['src', 'sink']));
  j.enterEpoch(3);
  j.markReady('w', 3, ['src']);
  j.detach('w');
  t.is(j.readyTasks, 0);
});
