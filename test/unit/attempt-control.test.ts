/**
 * The coordinator's side of the ordering rules of proto/PROTOCOL.md (§5):
 * the StartCommand of an epoch goes to every session in the step that makes
 * every task ready, and no trigger of the epoch is allowed before it (R1);
 * a session gets one RestoreCommand per epoch, and none of an epoch the
 * job has left. Checkpoint 0 (a first start) restores without reading etcd.
 */
import test from 'ava';
import { runningTracker } from '../helpers/job-tracker.js';
import type { AttachResponse } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { CheckpointStore } from '../../src/core/ports.js';
import { JobTracker } from '../../src/core/job-tracker.js';
import { validateJobSpec } from '../../src/core/validate.js';
import { AttemptControl } from '../../src/coordinator/attempt-control.js';
import { SessionRegistry, type Session } from '../../src/coordinator/sessions.js';
import { silentLogger } from '../../src/log/index.js';

interface Harness {
  tracker: JobTracker;
  attempts: AttemptControl;
  open: (workerId: string, taskIds: string[]) => { session: Session; sent: AttachResponse[] };
  recoveries: string[];
}

function harness(): Harness {
  const tracker = runningTracker();
  const registry = new SessionRegistry();
  const recoveries: string[] = [];
  // Nothing here has a committed checkpoint: a restore of checkpoint 0 reads no manifest.
  const store = {
    readManifest: () => Promise.reject(new Error('checkpoint 0 needs no manifest')),
  } as unknown as CheckpointStore;
  const attempts = new AttemptControl({
    tracker,
    store,
    logger: silentLogger(),
    sessions: () => registry.all(),
    term: 7,
    recover: (why) => recoveries.push(why),
    onStarted: () => {},
    quarantine: (why) => recoveries.push(`quarantined: ${why}`),
  });
  const open = (workerId: string, taskIds: string[]): { session: Session; sent: AttachResponse[] } => {
    const sent: AttachResponse[] = [];
    const session = registry.add({
      workerId,
      jobId: 'j',
      taskIds,
      channel: { send: (m) => sent.push(m), end: () => {} },
      nowMs: 0,
    });
    tracker.attach(workerId, taskIds);
    return { session, sent };
  };
  return { tracker, attempts, open, recoveries };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('the first start restores checkpoint 0, and StartCommand goes out only once every task is ready', async (t) => {
  const { tracker, attempts, open } = harness();
  const a = open('wa', ['src']);
  const b = open('wb', ['sink']);
  attempts.onAttach(a.session, 0);
  attempts.onAttach(b.session, 0);
  await settle();
  for (const { sent } of [a, b]) {
    t.like(sent, [{ restore: { jobId: 'j', epoch: 1, checkpointId: 0, snapshots: [], term: 7 } }]);
  }
  t.is(tracker.triggerRefusal()?.reason, 'TASKS_NOT_READY', 'no trigger while tasks restore');

  attempts.ready(a.session, 1, ['src']);
  t.is(a.sent.length, 1, 'no start before every task is ready');
  t.is(tracker.triggerRefusal()?.reason, 'TASKS_NOT_READY', 'no trigger before the start');

  attempts.ready(b.session, 1, ['sink']);
  for (const { sent } of [a, b]) t.deepEqual(sent.at(-1), { start: { jobId: 'j', epoch: 1, term: 7 } });
  t.is(tracker.triggerRefusal(), undefined, 'a trigger is allowed only once the start was sent to every session');
});

test('a session attaching while a recovery broadcasts gets one RestoreCommand of the epoch', async (t) => {
  const { attempts, open } = harness();
  const a = open('wa', ['src', 'sink']);
  attempts.onAttach(a.session, 0);
  attempts.restoreAll();
  attempts.restore(a.session);
  await settle();
  t.is(a.sent.filter((m) => m.restore !== undefined).length, 1);
});

test('a RestoreCommand of an epoch the job has left is not sent; the newer one is', async (t) => {
  const { tracker, attempts, open } = harness();
  const a = open('wa', ['src', 'sink']);
  attempts.restore(a.session);
  tracker.enterEpoch(2);
  await settle();
  t.deepEqual(a.sent, [], 'the restore of epoch 1 was overtaken before it went out');
  attempts.restoreAll();
  await settle();
  t.like(a.sent, [{ restore: { epoch: 2, checkpointId: 0 } }]);
});

test('a worker naming the epoch a resuming job is in is ready without a report; another epoch makes it recover', (t) => {
  const spec = validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'src' }] });
  const tracker = new JobTracker({
    spec,
    state: 'JOB_STATE_RUNNING',
    createdAtMs: 0,
    epoch: 4,
    latestCheckpointId: 0,
    idFloor: 1,
    retainedCheckpointIds: [],
    attempt: 'resuming',
  });
  const registry = new SessionRegistry();
  const recoveries: string[] = [];
  const attempts = new AttemptControl({
    tracker,
    store: {} as CheckpointStore,
    logger: silentLogger(),
    sessions: () => registry.all(),
    term: 9,
    recover: (why) => recoveries.push(why),
    onStarted: () => {},
    quarantine: () => t.fail('nothing to quarantine'),
  });
  const sent: AttachResponse[] = [];
  const session = registry.add({
    workerId: 'w',
    jobId: 'j',
    taskIds: ['src'],
    channel: { send: (m) => sent.push(m), end: () => {} },
    nowMs: 0,
  });
  tracker.attach('w', ['src']);
  attempts.onAttach(session, 3);
  t.is(recoveries.length, 1, 'a worker of another epoch makes the job recover');
  attempts.onAttach(session, 4);
  t.deepEqual(sent, [{ start: { jobId: 'j', epoch: 4, term: 9 } }]);
  t.is(tracker.attempt, 'running');
});
