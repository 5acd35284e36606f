import test from 'ava';
import { CheckpointStats, distributionOf, emptyStatistics } from '../../src/core/checkpoint-stats.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';

function summary(id: number, durationMs: number, aborted = false): CheckpointSummary__Output {
  return {
    jobId: 'j',
    checkpointId: id,
    epoch: 1,
    state: aborted ? 'CHECKPOINT_STATE_ABORTED' : 'CHECKPOINT_STATE_COMPLETED',
    abortReason: aborted ? 'ABORT_REASON_TIMEOUT' : 'ABORT_REASON_UNSPECIFIED',
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    manual: false,
    triggeredAtMs: 1000 * id,
    finishedAtMs: 1000 * id + durationMs,
    totalTasks: 1,
    acknowledgedTasks: 1,
    stateSizeBytes: 100 * id,
    persistedBytes: 10 * id,
    maxAlignmentMs: id,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 0,
  };
}

const task = { taskId: 't', acknowledgedAtMs: 5, metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' as const };

test('percentiles are nearest-rank over the recent values; min, max and avg over every value counted', (t) => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  const figure = { count: 1000, min: 0, max: 5000, sum: 1_000_000 };
  t.deepEqual(distributionOf(figure, values), { count: 1000, min: 0, max: 5000, avg: 1000, p50: 50, p90: 90, p99: 99 });
  t.deepEqual(distributionOf({ count: 0, min: 0, max: 0, sum: 0 }, []), {
    count: 0,
    min: 0,
    max: 0,
    avg: 0,
    p50: 0,
    p90: 0,
    p99: 0,
  });
  t.like(distributionOf({ count: 1, min: 7, max: 7, sum: 7 }, [7]), { p50: 7, p99: 7, avg: 7 });
});

test('counts, latest and a bounded history with task figures on the newest only', (t) => {
  const stats = new CheckpointStats(emptyStatistics(5), { history: 4, taskDetails: 2 });
  for (let id = 1; id <= 5; id += 1) stats.recordCompleted(summary(id, 10 * id), [task]);
  stats.recordAborted(summary(6, 99, true), [task]);
  stats.recordRestore({ epoch: 2, checkpointId: 5, restoredAtMs: 7000 });
  const stored = stats.stored();
  t.like(stored, { completed: 5, failed: 1, restored: 1, countingSinceMs: 5 });
  t.deepEqual(
    stored.history.map((r) => [r.summary?.checkpointId, r.tasks.length]),
    [
      [6, 1],
      [5, 1],
      [4, 0],
      [3, 0],
    ],
  );
  t.deepEqual(stored.durationMs, { count: 5, min: 10, max: 50, sum: 150 });
  const view = stats.view('j', [{ ...summary(7, 0), state: 'CHECKPOINT_STATE_PENDING', finishedAtMs: 0 }]);
  t.deepEqual(view.counts, { triggered: 7, inProgress: 1, completed: 5, failed: 1, restored: 1 });
  t.like(view.durationMs, { count: 5, min: 10, max: 50, avg: 30, p50: 40, p99: 50 }, 'percentiles of 3, 4, 5');
  t.deepEqual(
    view.history.map((s) => s.checkpointId),
    [7, 6, 5, 4, 3],
  );
  t.is(view.latestCompleted?.checkpointId, 5);
  t.is(view.latestFailed?.checkpointId, 6);
  t.like(view.latestRestored, { epoch: 2, checkpointId: 5 });
  // A checkpoint recorded twice (a commit retried) counts once.
  stats.recordCompleted(summary(5, 50), [task]);
  t.is(stats.stored().completed, 5);
});

test('a commit that stores the statistics leaves nothing to write; a change meanwhile does', (t) => {
  const stats = new CheckpointStats(emptyStatistics(0));
  t.false(stats.dirty);
  let version = stats.version;
  const preview = stats.withCompleted(summary(1, 10), [task]);
  stats.recordCompleted(summary(1, 10), [task], version);
  t.deepEqual(stats.stored(), preview, 'the commit stored exactly what the statistics now hold');
  t.false(stats.dirty);
  stats.recordAborted(summary(2, 10, true), []);
  t.true(stats.dirty);
  version = stats.version;
  stats.withCompleted(summary(3, 10), []);
  stats.recordAborted(summary(4, 10, true), []);
  stats.recordCompleted(summary(3, 10), [], version);
  t.true(stats.dirty, 'the abort of 4 came between the commit of 3 and its completion');
  stats.written(stats.version);
  t.false(stats.dirty);
});
