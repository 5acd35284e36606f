/**
 * The coordinator's limits: each is configurable, refuses what passes it
 * with a clear reason, and changes nothing; streams that send no hello,
 * standbys that stay silent and clients that leave replies unread are
 * ended instead of held without bound.
 */
import * as http2 from 'node:http2';
import test, { type ExecutionContext } from 'ava';
import { errorInfo } from '../../src/client/index.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import { codec } from '../../src/proto/index.js';
import { eventually, useServers } from '../helpers/index.js';
import { rawSession, refused } from '../helpers/refusals.js';
import { fanInSpec, sourcesSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

/** A gRPC frame: uncompressed, length-prefixed. */
function frame(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([header, bytes]);
}

/**
 * A raw HTTP/2 call that reads nothing: its stream's flow-control window
 * fills and the coordinator's replies can only queue.
 */
function nonReadingCall(t: ExecutionContext, address: string, path: string, first: Uint8Array, halfClose = false) {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => {});
  req.pause();
  req.write(frame(first));
  if (halfClose) req.end();
  const closed = new Promise<void>((resolve) => req.on('close', () => resolve()));
  return { req, closed };
}

test('jobs, tasks per job, sessions and standbys per job are limited', async (t) => {
  const c = await startTestCoordinator(t, servers, {
    maxJobs: 2,
    maxTasksPerJob: 4,
    maxSessions: 1,
    maxStandbysPerJob: 1,
  });
  const spec = fanInSpec('a', 2, 1);
  await c.client.submitJob({ spec });
  await c.client.submitJob({ spec: sourcesSpec('b', 1) });
  const before = await c.dump();
  await refused(t, c.client.submitJob({ spec: sourcesSpec('c', 1) }), 'LIMIT_REACHED');
  t.false((await c.client.submitJob({ spec })).created, 'the same spec again is still a no-op');
  await refused(t, c.client.submitJob({ spec: sourcesSpec('b', 5) }), 'OVERSIZED');
  t.deepEqual(await c.dump(), before);

  await c.worker({ jobId: 'a', workerId: 'w0', taskIds: ['src-0', 'src-1', 'sink-0'], spec });
  const second = rawSession(c.client, [{ hello: { workerId: 'w1', jobId: 'b', taskIds: ['t00000'] } }]);
  t.is(errorInfo(await second.ended)?.reason, 'LIMIT_REACHED');
  const standby = rawSession(c.client, [{ hello: { workerId: 's1', jobId: 'a', taskIds: ['src-0'], standby: true } }]);
  t.teardown(() => standby.call.cancel());
  await eventually(() => c.running.coordinator.waitingStandbys('a') === 1, { what: 'one standby waiting' });
  const another = rawSession(c.client, [{ hello: { workerId: 's2', jobId: 'a', taskIds: ['sink-0'], standby: true } }]);
  t.is(errorInfo(await another.ended)?.reason, 'LIMIT_REACHED');
  t.is(c.running.coordinator.waitingStandbys('a'), 1);
});

test('a stream without a hello and a silent standby are ended; a heartbeating standby waits', async (t) => {
  const c = await startTestCoordinator(t, servers, { helloTimeoutMs: 300, standbyTimeoutMs: 2000 });
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  const mute = rawSession(c.client, []);
  const err = await mute.ended;
  t.is(errorInfo(err)?.reason, 'UNAVAILABLE');
  t.regex(err?.details ?? '', /no hello within 300 ms/);

  await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec });
  const hello = (workerId: string): AttachRequest => ({
    hello: { workerId, jobId: 'job', taskIds: ['src-0', 'sink-0'], standby: true },
  });
  const silent = rawSession(c.client, [hello('quiet')]);
  const alive = rawSession(c.client, [hello('talker')]);
  t.teardown(() => alive.call.cancel());
  const beat = setInterval(() => alive.call.write({ heartbeat: { sentAtMs: Date.now() } }), 300);
  t.teardown(() => clearInterval(beat));
  const gone = await silent.ended;
  t.is(errorInfo(gone)?.reason, 'UNAVAILABLE');
  t.regex(gone?.details ?? '', /no heartbeat for 2000 ms/);
  t.is(c.running.coordinator.waitingStandbys('job'), 1, 'the standby that heartbeats still waits');
  t.deepEqual(alive.got, []);
});

test('watchers are limited, and a watcher that reads nothing is ended, not buffered', async (t) => {
  const c = await startTestCoordinator(t, servers, { maxWatchers: 1, maxUnreadReplyBytes: 16 * 1024 });
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 60_000, tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec, behaviour: 'silent' });
  await c.started('job');
  // The coordinator's own subscribers (its metrics) are there before any watcher.
  const idle = c.running.coordinator.events.size;
  const watchRequest = codec<Record<string, never>, unknown>('WatchCheckpointsRequest').encode({});
  const stuck = nonReadingCall(t, c.address, '/ckpt.v1.CheckpointQuery/WatchCheckpoints', watchRequest, true);
  await eventually(() => c.running.coordinator.events.size === idle + 1, { what: 'the watcher subscribed' });
  const second = c.query.watchCheckpoints({});
  await refused(t, second.next(), 'LIMIT_REACHED');

  // Aborts with 4 KiB messages: the unread events pass the window and the limit within a few dozen.
  const token = w.welcome?.sessionToken ?? '';
  for (let i = 0; i < 60 && c.running.coordinator.events.size > idle; i++) {
    const id = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
    await c.client.declineCheckpoint({
      jobId: 'job',
      epoch: w.epoch,
      checkpointId: id,
      sessionToken: token,
      declines: [{ taskId: 'sink-0', message: 'z'.repeat(4000) }],
    });
  }
  await eventually(() => c.running.coordinator.events.size === idle, { what: 'the stuck watcher ended' });
  await stuck.closed;
  const events = c.query.watchCheckpoints({ jobId: 'job' });
  const next = events.next();
  await c.client.triggerCheckpoint({ jobId: 'job' });
  t.is((await next).value?.state, 'CHECKPOINT_STATE_PENDING', 'a new watcher is served again');
  await events.return(undefined);
});

test('a session that reads none of its results is ended and its tasks detach', async (t) => {
  const c = await startTestCoordinator(t, servers, { maxUnreadReplyBytes: 8 * 1024 });
  const spec = fanInSpec('job', 1, 1);
  await c.client.submitJob({ spec });
  const attach = codec<AttachRequest, unknown>('AttachRequest');
  const stuck = nonReadingCall(
    t,
    c.address,
    '/ckpt.v1.Coordinator/Attach',
    attach.encode({ hello: { workerId: 'w0', jobId: 'job', taskIds: ['src-0', 'sink-0'] } }),
  );
  await eventually(async () => (await c.client.getJob({ jobId: 'job' })).job?.attachedTasks === 2, {
    what: 'the session attached',
  });
  // Each refused decline is answered with a result the client never reads.
  const decline = frame(attach.encode({ decline: { requestId: 1, epoch: 1, checkpointId: 1, declines: [] } }));
  const burst = Buffer.concat(Array.from({ length: 500 }, () => decline));
  for (let i = 0; i < 20 && !stuck.req.closed; i++) {
    stuck.req.write(burst);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await stuck.closed;
  t.not(stuck.req.rstCode, undefined, 'the coordinator reset the stream');
  await eventually(async () => (await c.client.getJob({ jobId: 'job' })).job?.attachedTasks === 0, {
    what: 'the session ended and detached',
  });
  const w = await c.worker({ jobId: 'job', workerId: 'w1', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('job');
  t.truthy(w.welcome, 'its tasks attach again');
});

test('acknowledgement bytes pending per job are limited', async (t) => {
  const c = await startTestCoordinator(t, servers, { maxPendingAckBytesPerJob: 4096 });
  const spec = fanInSpec('job', 1, 1, { timeoutMs: 60_000 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w0', taskIds: ['src-0', 'sink-0'], spec, behaviour: 'silent' });
  await c.started('job');
  const id = (await c.client.triggerCheckpoint({ jobId: 'job' })).checkpoint?.checkpointId ?? 0;
  const checksum = `sha256:${'ab'.repeat(32)}`;
  const shared = Array.from({ length: 40 }, (_, i) => ({ uri: `file:///shared/${i}`, checksum, sizeBytes: 1 }));
  const before = await c.dump();
  await refused(
    t,
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: w.epoch,
      checkpointId: id,
      sessionToken: w.welcome?.sessionToken ?? '',
      snapshots: [{ taskId: 'src-0', state: { uri: 'file:///s', checksum, sizeBytes: 1, shared } }],
    }),
    'LIMIT_REACHED',
  );
  t.deepEqual(await c.dump(), before);
  t.is((await c.query.getCheckpoint({ jobId: 'job', checkpointId: id })).checkpoint?.acknowledgedTasks, 0);
});
