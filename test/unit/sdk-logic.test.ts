import test from 'ava';
import { eventually } from '../helpers/wait.js';
import { AckBatcher, type AckBatch } from '../../src/worker-protocol/index.js';
import { CkptError } from '../../src/core/errors.js';
import {
  backoffDelayMs,
  jobGraph,
  resolveBackoff,
  resolveWorkerOptions,
  SinkStaging,
  sinkMessageId,
  type StateBackend,
} from '../../src/sdk/index.js';
import { alignmentModeOf, checkWiring } from '../../src/sdk/wiring.js';
import { emitAll } from '../../src/sdk/emission.js';
import { decodeUnalignedSnapshot, encodeUnalignedSnapshot } from '../../src/sdk/unaligned-snapshot.js';
import type { TaskContext } from '../../src/sdk/index.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test('sink staging seals intervals into pending groups and encodes them losslessly', (t) => {
  const s = new SinkStaging();
  s.stage(bytes('a'));
  s.stage(bytes('b'));
  s.seal(3);
  s.stage(bytes(''));
  s.stage(bytes('c'));
  t.is(s.staged, 2);
  s.seal(5);
  s.stage(bytes('not sealed'));
  const decoded = SinkStaging.decode(s.encode('job'));
  t.deepEqual(decoded.pendingIds, [3, 5]);
  t.is(decoded.staged, 0, 'records after the last snapshot are not part of it');
  const groups = decoded.committable(4);
  t.deepEqual(
    groups.map(([k, records]) => [k, records.map(text)]),
    [[3, ['a', 'b']]],
  );
  decoded.drop(3);
  t.deepEqual(
    decoded.committable(99).map(([k, r]) => [k, r.map(text)]),
    [[5, ['', 'c']]],
  );
  t.deepEqual(SinkStaging.decode(new SinkStaging().encode('job')).pendingIds, []);
});

test('sink staging encodes again what changed since the last snapshot, and only that', (t) => {
  const s = new SinkStaging();
  const groupsOf = (staging: SinkStaging) =>
    SinkStaging.decode(staging.encode('job'))
      .committable(99)
      .map(([k, records]) => [k, records.map(text)]);
  s.stage(bytes('a'));
  s.seal(1);
  t.deepEqual(groupsOf(s), [[1, ['a']]]);
  s.stage(bytes('b'));
  s.seal(2);
  t.deepEqual(groupsOf(s), [
    [1, ['a']],
    [2, ['b']],
  ]);
  // A second seal of the same checkpoint adds to its group: the earlier encoding is stale.
  s.stage(bytes('c'));
  s.seal(2);
  t.deepEqual(groupsOf(s), [
    [1, ['a']],
    [2, ['b', 'c']],
  ]);
  s.drop(1);
  t.deepEqual(groupsOf(s), [[2, ['b', 'c']]]);
  t.deepEqual(s.encode('job'), s.encode('job'), 'the same bytes twice');
});

test('sink staging refuses bytes it did not write', (t) => {
  t.throws(() => SinkStaging.decode(bytes('nope')), { instanceOf: CkptError });
  const good = new SinkStaging();
  good.stage(bytes('abc'));
  good.seal(1);
  const encoded = good.encode('job');
  t.throws(() => SinkStaging.decode(encoded.slice(0, encoded.length - 1)), { message: /truncated/ });
  t.throws(() => SinkStaging.decode(new Uint8Array([...encoded, 0])), { message: /trailing/ });
});

test('a sink snapshot names the job that took it; one written before without it still decodes', (t) => {
  const s = new SinkStaging();
  s.stage(bytes('a'));
  s.seal(4);
  const decoded = SinkStaging.decode(s.encode('job-é'));
  t.is(decoded.origin, 'job-é');
  t.deepEqual(
    decoded.committable(9).map(([k, r]) => [k, r.map(text)]),
    [[4, ['a']]],
  );
  // "CKS1", one group: checkpoint 2, one record "x".
  const v1 = new Uint8Array([0x43, 0x4b, 0x53, 0x31, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0x78]);
  const old = SinkStaging.decode(v1);
  t.is(old.origin, undefined);
  t.deepEqual(
    old.committable(9).map(([k, r]) => [k, r.map(text)]),
    [[2, ['x']]],
  );
});

test('sink message ids name job, task, checkpoint and index', (t) => {
  t.is(sinkMessageId('job', 'sink', 7, 0), 'job/sink/7/0');
});

test('the ack batcher sends one batch per checkpoint when every task is in', async (t) => {
  const sent: AckBatch[] = [];
  const b = new AckBatcher({
    batchMs: 10_000,
    expectedResults: 2,
    send: (batch) => Promise.resolve(void sent.push(batch)),
  });
  const snapshot = (taskId: string) => ({ taskId });
  b.add(1, 0, { kind: 'ack', taskId: 'a', snapshot: snapshot('a') });
  t.is(sent.length, 0);
  b.add(1, 0, { kind: 'decline', taskId: 'b', message: 'no' });
  await b.flushAll();
  t.is(sent.length, 1);
  t.deepEqual(sent[0]?.acks, [snapshot('a')]);
  t.deepEqual(sent[0]?.declines, [{ taskId: 'b', message: 'no' }]);
  b.close();
});

test('the ack batcher flushes after batchMs and drops batches of other epochs or aborted checkpoints', async (t) => {
  const sent: AckBatch[] = [];
  const b = new AckBatcher({
    batchMs: 5,
    expectedResults: 3,
    send: (batch) => Promise.resolve(void sent.push(batch)),
  });
  b.add(1, 0, { kind: 'ack', taskId: 'a', snapshot: { taskId: 'a' } });
  b.add(2, 0, { kind: 'ack', taskId: 'a', snapshot: { taskId: 'a' } });
  b.add(3, 0, { kind: 'ack', taskId: 'a', snapshot: { taskId: 'a' } });
  b.add(3, 1, { kind: 'ack', taskId: 'b', snapshot: { taskId: 'b' } });
  b.discard(2);
  b.discardOtherEpochs(1);
  t.deepEqual(b.openCheckpoints, [3]);
  await eventually(() => b.openCheckpoints.length === 0, { pollMs: 1, what: 'the batch window of checkpoint 3' });
  t.deepEqual(
    sent.map((s) => [s.checkpointId, s.epoch, s.acks.length]),
    [[3, 1, 1]],
  );
  b.close();
});

test('backoff grows to its maximum and stays within its jitter', (t) => {
  const c = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.5 });
  t.is(
    backoffDelayMs(c, 0, () => 0.5),
    100,
  );
  t.is(
    backoffDelayMs(c, 3, () => 0.5),
    800,
  );
  t.is(
    backoffDelayMs(c, 10, () => 0.5),
    1000,
  );
  t.is(
    backoffDelayMs(c, 10, () => 0),
    500,
  );
  t.is(
    backoffDelayMs(c, 10, () => 1),
    1500,
  );
  t.throws(() => resolveBackoff({ multiplier: 0.5 }), { message: /reconnect\.multiplier/ });
});

test('worker options get defaults and errors name the option', (t) => {
  const state = {} as StateBackend;
  const c = resolveWorkerOptions({ coordinator: 'h:1', nats: ['nats://x'], jobId: 'job', state });
  t.is(c.ackBatchMs, 5);
  t.regex(c.workerId, /^.+:\d+:[0-9a-f]{8}$/);
  t.is(c.labels.sdk, 'ckpt-ts');
  t.throws(() => resolveWorkerOptions({ coordinator: 'h:1', nats: [], jobId: 'job', state }), { message: /nats/ });
  t.throws(() => resolveWorkerOptions({ coordinator: 'h:1', nats: ['n'], jobId: 'a.b', state }), { message: /jobId/ });
  t.throws(() => resolveWorkerOptions({ coordinator: 'h:1', nats: ['n'], jobId: 'j', state, ackBatchMs: -1 }), {
    message: /ackBatchMs/,
  });
});

test('the job graph gives inputs and sorted outputs; wiring checks sources and unknown tasks', (t) => {
  const spec = {
    jobId: 'job',
    tasks: [
      { taskId: 'src', inputs: [], labels: {} },
      { taskId: 'b', inputs: ['src'], labels: {} },
      { taskId: 'a', inputs: ['src', 'src'], labels: {} },
      { taskId: 'sink', inputs: ['a', 'b'], labels: {} },
    ],
    policy: null,
    labels: {},
  };
  const g = jobGraph(spec);
  t.deepEqual(g.outputsOf('src'), ['a', 'b']);
  t.deepEqual(g.inputsOf('a'), ['src']);
  t.deepEqual(g.inputsOf('sink'), ['a', 'b']);
  t.deepEqual(g.outputsOf('sink'), []);
  const source = {
    read: () => ({
      [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true as const, value: undefined }) }),
    }),
    handle: () => {},
  };
  t.notThrows(() => checkWiring(g, new Map([['src', source]])));
  t.throws(() => checkWiring(g, new Map([['a', source]])), { message: /is a source but has inputs/ });
  t.throws(() => checkWiring(g, new Map([['nope', { process: () => {} }]])), { message: /UNKNOWN_TASK/ });
});

test('policy modes map to alignment modes, ALIGNED by default', (t) => {
  t.is(alignmentModeOf('CHECKPOINT_MODE_ALIGNED'), 'aligned');
  t.is(alignmentModeOf('CHECKPOINT_MODE_UNSPECIFIED'), 'aligned');
  t.is(alignmentModeOf(undefined), 'aligned');
  t.is(alignmentModeOf('CHECKPOINT_MODE_AT_LEAST_ONCE'), 'at-least-once');
  t.is(alignmentModeOf('CHECKPOINT_MODE_UNALIGNED'), 'unaligned');
});

test('an unaligned snapshot keeps the state and the in-flight records with their inputs and keys', (t) => {
  const inFlight = [
    { from: 'a', key: undefined, value: bytes('one') },
    { from: 'b', key: 'k', value: bytes('') },
    { from: 'a', key: '', value: bytes('three') },
  ];
  const encoded = encodeUnalignedSnapshot(bytes('state'), inFlight);
  const decoded = decodeUnalignedSnapshot(encoded);
  t.is(text(decoded.state), 'state');
  t.deepEqual(
    decoded.inFlight.map((r) => [r.from, r.key, text(r.value)]),
    [
      ['a', undefined, 'one'],
      ['b', 'k', ''],
      ['a', '', 'three'],
    ],
  );
  t.deepEqual(decodeUnalignedSnapshot(encodeUnalignedSnapshot(new Uint8Array(), [])).inFlight, []);
  t.throws(() => decodeUnalignedSnapshot(encoded.slice(0, -1)), { message: /truncated/ });
  t.throws(() => decodeUnalignedSnapshot(bytes('{"entries":[]}')), { instanceOf: CkptError });
});

test('emitAll emits bare payloads and routed ones in order', (t) => {
  const calls: unknown[] = [];
  const ctx = { emit: (value: unknown, options: unknown) => calls.push([value, options]) } as unknown as TaskContext;
  emitAll(['a', { value: 'b', key: 'k' }, { value: 'c', to: 't' }], ctx);
  emitAll(undefined, ctx);
  emitAll('d', ctx);
  t.deepEqual(calls, [
    ['a', undefined],
    ['b', { key: 'k' }],
    ['c', { to: 't' }],
    ['d', undefined],
  ]);
});
