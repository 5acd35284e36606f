/**
 * A recovery restores the checkpoint the job committed last from the
 * manifest the commit kept, without reading it back from etcd.
 */
import test from 'ava';
import { runningTracker, SOURCE_AND_SINK } from '../helpers/job-tracker.js';
import type { AttachResponse } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { Manifest__Output } from '../../src/gen/ckpt/v1/Manifest.js';
import type { CheckpointStore } from '../../src/core/ports.js';
import { AttemptControl } from '../../src/coordinator/attempt-control.js';
import { SessionRegistry } from '../../src/coordinator/sessions.js';
import { silentLogger } from '../../src/log/index.js';
import { simulatedSnapshot } from '../sim/index.js';

function manifest(checkpointId: number): Manifest__Output {
  const tasks = ['sink', 'src'].map((taskId) =>
    simulatedSnapshot({ jobId: 'j', taskId, checkpointId, stateBytes: 10, source: taskId === 'src', alignmentMs: 0 }),
  );
  return {
    jobId: 'j',
    checkpointId,
    epoch: 1,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: 1,
    completedAtMs: 2,
    tasks,
    fromSavepoint: null,
  };
}

test('a recovery restores the last committed checkpoint from memory', async (t) => {
  const tracker = runningTracker(SOURCE_AND_SINK, {
    epoch: 2,
    latestCheckpointId: 5,
    idFloor: 6,
    retainedCheckpointIds: [4, 5],
  });
  const reads: number[] = [];
  const store = {
    readManifest: (_jobId: string, checkpointId: number) => {
      reads.push(checkpointId);
      return Promise.resolve(manifest(checkpointId));
    },
  } as unknown as CheckpointStore;
  const registry = new SessionRegistry();
  const attempts = new AttemptControl({
    tracker,
    store,
    logger: silentLogger(),
    sessions: () => registry.all(),
    term: 1,
    recover: () => {},
    onStarted: () => {},
    quarantine: () => {},
  });
  attempts.committed(manifest(5));
  const sent: AttachResponse[] = [];
  const session = registry.add({
    workerId: 'w',
    jobId: 'j',
    taskIds: ['src', 'sink'],
    channel: { send: (m) => sent.push(m), end: () => {} },
    nowMs: 0,
  });
  tracker.attach('w', ['src', 'sink']);
  attempts.onAttach(session, 0);
  await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(reads, [], 'nothing read from the store');
  const restore = sent[0]?.restore;
  t.is(restore?.checkpointId, 5);
  t.deepEqual(
    (restore?.snapshots ?? []).map((s) => s.taskId),
    ['src', 'sink'],
    "the session's tasks, in its order",
  );
  t.like(restore?.snapshots?.[0], { state: { uri: 'sim://j/src/5' } });
});
