/**
 * Session replies encoded ahead (welcome with its spec encoded once,
 * restore joined from the snapshots' encodings) decode to what the
 * service's own serializer writes for the same message, and the service
 * definition wrapped for them writes those bytes.
 */
import test from 'ava';
import { encodedReply, restoreReply, welcomeReply } from '../../src/coordinator/reply-encoding.js';
import type { AttachResponse } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { codec, serviceDefinition } from '../../src/proto/index.js';
import { withEncodedReplies } from '../../src/server/reply-stream.js';
import { prepareTaskSnapshots } from '../../src/store/manifest-encoding.js';
import { simulatedSnapshot } from '../sim/index.js';

const responses = codec<AttachResponse, unknown>('AttachResponse');

function spec(tasks: number): JobSpec {
  return {
    jobId: 'job',
    tasks: Array.from({ length: tasks }, (_, i) => ({ taskId: `t${i}`, inputs: i === 0 ? [] : [`t${i - 1}`] })),
    policy: { intervalMs: 1000 },
  };
}

function welcome(s: JobSpec, sessionId: string): Parameters<typeof welcomeReply>[0] {
  return {
    sessionId,
    epoch: 3,
    heartbeatIntervalMs: 1000,
    heartbeatTimeoutMs: 10_000,
    latestCheckpointId: 200,
    controlSubjectPrefix: 'ckpt.job',
    spec: s,
    term: 12,
    sessionToken: `token-${sessionId}`,
    nextCheckpointId: 201,
  };
}

test('a welcome encoded ahead decodes as the whole message, for every session of one spec', (t) => {
  const s = spec(3000);
  for (const sessionId of ['a', 'b']) {
    const reply = welcomeReply(welcome(s, sessionId));
    const bytes = encodedReply(reply);
    if (bytes === undefined) return t.fail('no encoding kept');
    t.deepEqual(reply, { welcome: welcome(s, sessionId) }, 'the reply stays the plain message');
    t.deepEqual(responses.decode(bytes), responses.decode(responses.encode(reply)));
    t.is((responses.decode(bytes) as { welcome: { spec: { tasks: unknown[] } } }).welcome.spec.tasks.length, 3000);
  }
});

test('a welcome without a spec, and a restore without snapshots, decode as the whole message', (t) => {
  const bare = welcomeReply({ sessionId: 's', epoch: 1 });
  t.deepEqual(responses.decode(encodedReply(bare)!), responses.decode(responses.encode(bare)));
  const empty = restoreReply({ jobId: 'job', epoch: 2, checkpointId: 0, snapshots: [], term: 4 });
  t.deepEqual(responses.decode(encodedReply(empty)!), responses.decode(responses.encode(empty)));
});

test('a restore joined from snapshot encodings decodes as the whole message', (t) => {
  const snapshots = Array.from({ length: 300 }, (_, i) =>
    simulatedSnapshot({
      jobId: 'job',
      taskId: `t${i}`,
      checkpointId: 7,
      stateBytes: 100 * i,
      source: i % 2 === 0,
      alignmentMs: i,
    }),
  );
  // Half were encoded when acknowledged, the others are encoded by the restore.
  prepareTaskSnapshots(snapshots.slice(0, 150));
  const restore = {
    jobId: 'job',
    epoch: 5,
    checkpointId: 7,
    snapshots,
    term: 12,
    nextCheckpointId: 9,
    sourceJobId: 'old',
  };
  const reply = restoreReply(restore);
  t.deepEqual(reply, { restore });
  t.deepEqual(responses.decode(encodedReply(reply)!), responses.decode(responses.encode(reply)));
});

test('the wrapped service writes a reply encoded ahead as its bytes, and encodes others as before', (t) => {
  const attach = withEncodedReplies(serviceDefinition('Coordinator')).Attach!;
  const reply = welcomeReply(welcome(spec(10), 'x'));
  t.is(attach.responseSerialize(reply), encodedReply(reply)!);
  const plain: AttachResponse = { start: { jobId: 'job', epoch: 2, term: 3 } };
  t.deepEqual(responses.decode(attach.responseSerialize(plain)), responses.decode(responses.encode(plain)));
  t.is(encodedReply(plain), undefined);
});
