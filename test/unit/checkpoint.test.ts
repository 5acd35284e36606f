import test from 'ava';
import { Checkpoint } from '../../src/core/checkpoint.js';
import { CkptError } from '../../src/core/errors.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';

function snap(taskId: string, uri = `file:///s/${taskId}`): TaskSnapshot__Output {
  return {
    taskId,
    state: {
      uri,
      sizeBytes: 10,
      checksum: 'sha256:00',
      shared: [],
      compression: 'STATE_COMPRESSION_UNSPECIFIED',
      rawSizeBytes: 0,
      inFlightRecords: false,
    },
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    positions: [],
    metrics: {
      alignmentMs: 1,
      syncMs: 2,
      asyncMs: 3,
      stateSizeBytes: 10,
      persistedBytes: 5,
      inFlightBytes: 0,
      processedRecords: 0,
      startDelayMs: 0,
    },
  };
}

function make(): Checkpoint {
  return new Checkpoint({
    jobId: 'j',
    checkpointId: 7,
    epoch: 1,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    manual: false,
    triggeredAtMs: 100,
    deadlineMs: 200,
    taskIds: ['a', 'b'],
  });
}

function reason(t: import('ava').ExecutionContext, fn: () => unknown): string {
  const err = t.throws(fn);
  t.true(err instanceof CkptError);
  return (err as CkptError).reason;
}

test('completes only after every task acknowledged and the commit began', (t) => {
  const c = make();
  c.acknowledge([snap('a')], 0);
  t.false(c.fullyAcknowledged);
  t.throws(() => c.beginCommit());
  c.acknowledge([snap('b')], 0);
  t.true(c.fullyAcknowledged);
  t.throws(() => c.complete(150, 1, 0), { message: /without a commit/ });
  c.beginCommit();
  c.complete(150, 100, 0);
  t.is(c.status, 'COMPLETED');
  const s = c.summary();
  t.is(s.state, 'CHECKPOINT_STATE_COMPLETED');
  t.is(s.acknowledgedTasks, 2);
  t.is(s.stateSizeBytes, 20);
  t.is(s.persistedBytes, 10);
  t.is(s.maxSnapshotMs, 5);
  t.is(s.manifestBytes, 100);
  // A finished checkpoint keeps its figures, not its snapshots.
  t.is(
    reason(t, () => c.manifest(160)),
    'CHECKPOINT_COMPLETED',
  );
  t.true(c.fullyAcknowledged);
});

test('an aborted checkpoint reports the acknowledgements it had', (t) => {
  const c = make();
  c.acknowledge([snap('a')], 0);
  c.abort('ABORT_REASON_TIMEOUT', 'late', 300);
  t.like(c.summary(), { acknowledgedTasks: 1, totalTasks: 2, stateSizeBytes: 10, maxAlignmentMs: 1 });
  t.false(c.fullyAcknowledged);
});

test('a repeated acknowledgement is a no-op; a different one conflicts', (t) => {
  const c = make();
  t.deepEqual(c.acknowledge([snap('a')], 0), { recorded: 1, duplicates: 0 });
  t.deepEqual(c.acknowledge([snap('a')], 0), { recorded: 0, duplicates: 1 });
  t.is(
    reason(t, () => c.acknowledge([snap('a', 'file:///other')], 0)),
    'CONFLICTING_ACK',
  );
  t.is(c.acknowledgedTasks, 1);
});

test('a call is refused whole: an unknown task records nothing', (t) => {
  const c = make();
  t.is(
    reason(t, () => c.acknowledge([snap('a'), snap('zz')], 0)),
    'UNKNOWN_TASK',
  );
  t.is(c.acknowledgedTasks, 0);
  t.is(
    reason(t, () => c.acknowledge([snap('a'), snap('a')], 0)),
    'MALFORMED',
  );
  t.is(c.acknowledgedTasks, 0);
});

test('illegal transitions throw with the reason of the state', (t) => {
  const aborted = make();
  aborted.abort('ABORT_REASON_TIMEOUT', 'late', 300);
  t.is(
    reason(t, () => aborted.acknowledge([snap('a')], 0)),
    'CHECKPOINT_ABORTED',
  );
  t.is(
    reason(t, () => aborted.abort('ABORT_REASON_DECLINED', 'x', 301)),
    'CHECKPOINT_ABORTED',
  );
  t.is(aborted.summary().abortReason, 'ABORT_REASON_TIMEOUT');

  const done = make();
  done.acknowledge([snap('a'), snap('b')], 0);
  done.beginCommit();
  t.throws(() => done.beginCommit(), { message: /twice/ });
  done.complete(150, 1, 0);
  t.is(
    reason(t, () => done.acknowledge([snap('a')], 0)),
    'CHECKPOINT_COMPLETED',
  );
  t.is(
    reason(t, () => done.abort('ABORT_REASON_TIMEOUT', 'x', 1)),
    'CHECKPOINT_COMPLETED',
  );
});

test('the manifest lists every task in task-id order', (t) => {
  const c = make();
  c.acknowledge([snap('b'), snap('a')], 0);
  const m = c.manifest(123);
  t.deepEqual(
    m.tasks.map((x) => x.taskId),
    ['a', 'b'],
  );
  t.is(m.completedAtMs, 123);
  t.is(m.checkpointId, 7);
});
