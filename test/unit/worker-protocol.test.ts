import test from 'ava';
import { jobSubjects } from '../../src/bus/index.js';
import {
  AckBatcher,
  DATA_WILDCARD_THRESHOLD,
  dataSubscriptions,
  estimateSnapshotBytes,
  MAX_ACK_SNAPSHOTS_PER_MESSAGE,
  splitBySize,
  type AckBatch,
} from '../../src/worker-protocol/index.js';
import { eventually } from '../helpers/wait.js';
import { simulatedSnapshot, workerTopology } from '../sim/index.js';

const spec = {
  jobId: 'job',
  tasks: [
    { taskId: 'a', inputs: [] },
    { taskId: 'b', inputs: [] },
    { taskId: 'm', inputs: ['a', 'b', 'a'] },
    { taskId: 'n', inputs: ['a'] },
  ],
};

function snap(taskId: string, checkpointId = 1) {
  return simulatedSnapshot({ jobId: 'job', taskId, checkpointId, stateBytes: 10, source: false, alignmentMs: 0 });
}

test('readers subscribe per edge, per task with many edges, per job with many tasks', (t) => {
  const subjects = jobSubjects('ckpt.job');
  t.deepEqual(dataSubscriptions(subjects, workerTopology(spec, ['a', 'm', 'n']).inputsByTask), [
    'ckpt.job.data.a.m',
    'ckpt.job.data.b.m',
    'ckpt.job.data.a.n',
  ]);
  t.deepEqual(dataSubscriptions(subjects, workerTopology(spec, ['a', 'b']).inputsByTask), [], 'sources read nothing');
  const ids = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`);
  const many = DATA_WILDCARD_THRESHOLD + 1;
  const fanIn = {
    jobId: 'job',
    tasks: [...ids(many, 's').map((taskId) => ({ taskId })), { taskId: 'sink', inputs: ids(many, 's') }],
  };
  t.deepEqual(dataSubscriptions(subjects, workerTopology(fanIn, ['sink']).inputsByTask), ['ckpt.job.data.*.sink']);
  const fanOut = {
    jobId: 'job',
    tasks: [{ taskId: 'src' }, ...ids(many, 'r').map((taskId) => ({ taskId, inputs: ['src'] }))],
  };
  t.deepEqual(dataSubscriptions(subjects, workerTopology(fanOut, ids(many, 'r')).inputsByTask), ['ckpt.job.data.*.*']);
});

function batcher(expectedResults: number, batchMs = 20) {
  const sent: AckBatch[] = [];
  const b = new AckBatcher({
    batchMs,
    expectedResults,
    send: (batch) => {
      sent.push(batch);
      return Promise.resolve();
    },
  });
  return { b, sent };
}

test('the batcher sends at once when every task of the worker is in', (t) => {
  const { b, sent } = batcher(3, 10_000);
  b.add(1, 1, { kind: 'ack', taskId: 'a', snapshot: snap('a') });
  b.add(1, 1, { kind: 'decline', taskId: 'b', message: 'no' });
  t.is(sent.length, 0);
  b.add(1, 1, { kind: 'silent', taskId: 'c' });
  t.is(sent.length, 1);
  t.deepEqual(
    sent[0]?.acks.map((s) => s.taskId),
    ['a'],
  );
  t.deepEqual(sent[0]?.declines, [{ taskId: 'b', message: 'no' }]);
  b.close();
});

test('the batcher sends what it has after the window, and nothing for silent tasks only', async (t) => {
  const { b, sent } = batcher(10, 10);
  b.add(1, 1, { kind: 'ack', taskId: 'a', snapshot: snap('a') });
  b.add(2, 1, { kind: 'silent', taskId: 'a' });
  await eventually(() => sent.length > 0, { pollMs: 1, what: 'the batch of checkpoint 1 after its window' });
  // Whether or not the window of checkpoint 2 passed yet, a flush sends nothing for it.
  await b.flushAll();
  t.deepEqual(
    sent.map((s) => s.checkpointId),
    [1],
  );
  b.close();
});

test('the batcher drops discarded checkpoints and everything after close', async (t) => {
  const { b, sent } = batcher(10, 10);
  b.add(1, 1, { kind: 'ack', taskId: 'a', snapshot: snap('a') });
  b.discard(1);
  b.close();
  b.add(2, 1, { kind: 'ack', taskId: 'a', snapshot: snap('a', 2) });
  // Nothing is left to send, now or when a window would have ended.
  await b.flushAll();
  t.is(sent.length, 0);
});

test('acknowledgements are split into runs below the size limit', (t) => {
  const snapshots = Array.from({ length: 100 }, (_, i) => snap(`t${i}`));
  const limit = estimateSnapshotBytes(snapshots[99]!) * 10;
  t.deepEqual(splitBySize(snapshots, 1e9).length, 1);
  const runs = splitBySize(snapshots, limit);
  t.true(runs.length >= 10 && runs.length <= 11, String(runs.length));
  for (const run of runs) t.true(run.reduce((n, s) => n + estimateSnapshotBytes(s), 0) <= limit);
  t.deepEqual(runs.flat(), snapshots);
  t.is(splitBySize(snapshots, 1).length, 100, 'an entry above the limit still goes, alone');
  t.deepEqual(splitBySize([], 10), []);
});

test('acknowledgements are split into runs of at most MAX_ACK_SNAPSHOTS_PER_MESSAGE snapshots', (t) => {
  const snapshots = Array.from({ length: 2 * MAX_ACK_SNAPSHOTS_PER_MESSAGE + 1 }, (_, i) => snap(`t${i}`));
  const runs = splitBySize(snapshots, 1e9);
  t.deepEqual(
    runs.map((r) => r.length),
    [MAX_ACK_SNAPSHOTS_PER_MESSAGE, MAX_ACK_SNAPSHOTS_PER_MESSAGE, 1],
  );
  t.deepEqual(runs.flat(), snapshots);
  t.deepEqual(
    splitBySize(snapshots.slice(0, 10), 1e9, 4).map((r) => r.length),
    [4, 4, 2],
  );
});
