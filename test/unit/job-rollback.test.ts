/**
 * A recovery never enters its new epoch while a checkpoint of the old one
 * is still committing. The second recovery in a row backs off before its
 * rollback; an acknowledgement that completes a pending checkpoint during
 * that wait starts its commit, which the abort of the pending checkpoints
 * leaves alone. The rollback then waits for that commit before it raises
 * the epoch. (Found by the protocol model, test/model/ckpt.pml, variant
 * ROLLBACK_WINDOW: before, the epoch rose in etcd, the tracker refused the
 * new epoch with the checkpoint pending, and the recovery failed.)
 */
import test from 'ava';
import { setTimeout as delay } from 'node:timers/promises';
import type { CheckpointStore } from '../../src/core/ports.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { JobBroadcasts } from '../../src/coordinator/job-broadcasts.js';
import { JobRollback } from '../../src/coordinator/job-rollback.js';
import { silentLogger } from '../../src/log/index.js';
import { runningTracker } from '../helpers/job-tracker.js';

const TASKS = ['src', 'sink'];

function snapshot(taskId: string): TaskSnapshot__Output {
  const state = { uri: `file:///s/${taskId}`, sizeBytes: 10, checksum: 'sha256:00', shared: [] };
  const metrics = { alignmentMs: 1, syncMs: 2, asyncMs: 3, stateSizeBytes: 10, persistedBytes: 5, inFlightBytes: 0 };
  return {
    taskId,
    state: { ...state, compression: 'STATE_COMPRESSION_UNSPECIFIED', rawSizeBytes: 0, inFlightRecords: false },
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    positions: [],
    metrics: { ...metrics, processedRecords: 0, startDelayMs: 0 },
  };
}

function harness() {
  const tracker = runningTracker();
  tracker.attach('w', TASKS);
  tracker.markReady('w', 1, TASKS);
  const commits = { chain: Promise.resolve() };
  const bumps: { from: number; to: number }[] = [];
  const recovered: number[] = [];
  // The epoch bump is etcd's compare-and-swap on the stored epoch; here it answers at once.
  let stored = 1;
  const store = {
    bumpEpoch: (_jobId: string, from: number) => {
      if (from !== stored) return Promise.reject(new Error(`stale epoch ${from}, stored ${stored}`));
      stored += 1;
      bumps.push({ from, to: stored });
      return Promise.resolve(stored);
    },
  } as unknown as CheckpointStore;
  const rollback = new JobRollback({
    tracker,
    store,
    guard: undefined,
    now: Date.now,
    log: silentLogger(),
    broadcasts: { recover: () => Promise.resolve() } as unknown as JobBroadcasts,
    commits: { settled: () => commits.chain },
    attempts: { restoreAll: () => {} },
    abortAll: (reason, message) => {
      for (const c of tracker.pendingCheckpoints()) {
        if (!c.committing) tracker.abort(c, reason, message, Date.now());
      }
    },
    arm: () => {},
    recovered: (epoch) => recovered.push(epoch),
    stopped: () => false,
    onLeadershipLost: () => {},
  });
  return { tracker, commits, bumps, recovered, rollback };
}

test('a commit that starts during the restart backoff ends before the recovery raises the epoch', async (t) => {
  const { tracker, commits, bumps, recovered, rollback } = harness();
  await rollback.recover('a task failed');
  t.deepEqual(recovered, [2]);
  t.true(tracker.markReady('w', 2, TASKS), 'every task ready in epoch 2');

  const checkpoint = tracker.trigger(Date.now(), true);
  // A second failure within moments: this recovery backs off (about 250 ms) before its rollback.
  const second = rollback.recover('the task failed again');
  await delay(20);
  t.is(checkpoint.status, 'PENDING', 'the pending checkpoint is left alone while the recovery backs off');
  // Meanwhile its last acknowledgement arrives: it starts its commit, which etcd answers only after the wait.
  checkpoint.acknowledge(TASKS.map(snapshot), Date.now());
  checkpoint.beginCommit();
  let answer: () => void = () => {};
  const answered = new Promise<void>((resolve) => (answer = resolve));
  commits.chain = commits.chain.then(async () => {
    await answered;
    tracker.complete(checkpoint, Date.now(), 0, 0);
  });
  setTimeout(() => answer(), 600);

  await second;
  t.deepEqual(recovered, [2, 3], 'the second recovery entered epoch 3');
  t.is(tracker.epoch, 3);
  t.deepEqual(bumps, [
    { from: 1, to: 2 },
    { from: 2, to: 3 },
  ]);
  t.is(checkpoint.status, 'COMPLETED', 'the checkpoint whose commit was under way completed, before the new epoch');
  t.is(tracker.pendingCheckpoints().length, 0);
});

test('pending checkpoints that are not committing abort before the recovery raises the epoch', async (t) => {
  const { tracker, bumps, recovered, rollback } = harness();
  const checkpoint = tracker.trigger(Date.now(), true);
  await rollback.recover('a task failed');
  t.is(checkpoint.status, 'ABORTED');
  t.deepEqual(recovered, [2]);
  t.deepEqual(bumps, [{ from: 1, to: 2 }]);
});
