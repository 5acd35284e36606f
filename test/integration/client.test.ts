/**
 * The TypeScript clients against the real coordinator: decoded responses,
 * bearer tokens, reasons and ids read from trailing metadata, reasons
 * derived from status codes, deadlines, cancellation and the watch stream.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import {
  createCoordinatorClient,
  createQueryClient,
  errorInfo,
  errorReason,
  isCancelled,
  toCkptError,
} from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { sourcesSpec, startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();

test('unary calls resolve with decoded responses and carry the bearer token', async (t) => {
  const c = await startTestCoordinator(t, servers, { authToken: 'sekret' });
  // c.client and c.query carry the coordinator's token.
  const spec = { jobId: 'job', tasks: [{ taskId: 'a' }] };
  const response = await c.client.submitJob({ spec });
  t.true(response.created);
  t.like(response.job, { state: 'JOB_STATE_RUNNING', epoch: 1, latestCheckpointId: 0 });
  t.is(response.job?.spec?.tasks[0]?.taskId, 'a');
  t.false((await c.client.submitJob({ spec })).created, 'the same spec again is a no-op');
  t.deepEqual(
    (await c.query.listJobs()).jobs.map((j) => j.spec?.jobId),
    ['job'],
  );

  const anonymous = createQueryClient(c.address);
  t.teardown(() => anonymous.close());
  t.like(errorInfo(await t.throwsAsync(anonymous.listJobs())), {
    code: grpc.status.UNAUTHENTICATED,
    reason: 'UNAUTHENTICATED',
    message: 'UNAUTHENTICATED: the call carries no authorization metadata',
    retryable: false,
  });
  const wrong = createCoordinatorClient(c.address, { token: 'guess' });
  t.teardown(() => wrong.close());
  t.like(errorInfo(await t.throwsAsync(wrong.getJob({ jobId: 'job' }))), {
    code: grpc.status.UNAUTHENTICATED,
    reason: 'UNAUTHENTICATED',
    message: 'UNAUTHENTICATED: the bearer token is not valid',
    retryable: false,
  });
});

test('errorReason and errorInfo read the reason and ids the server sends', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1);
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'job', workerId: 'w', taskIds: ['t00000'], spec });
  const err = await t.throwsAsync(
    c.client.acknowledgeCheckpoint({
      jobId: 'job',
      epoch: 3,
      checkpointId: 12,
      workerId: 'w',
      snapshots: [{ taskId: 't00000' }],
      sessionToken: w.welcome?.sessionToken ?? '',
    }),
  );
  t.is(errorReason(err), 'STALE_EPOCH');
  t.deepEqual(errorInfo(err), {
    code: grpc.status.FAILED_PRECONDITION,
    reason: 'STALE_EPOCH',
    ids: { jobId: 'job', epoch: 3, checkpointId: 12 },
    message: "STALE_EPOCH: epoch 3 is not the job's epoch 1",
    retryable: false,
  });
  const ckpt = toCkptError(err);
  t.is(ckpt.message, "STALE_EPOCH: epoch 3 is not the job's epoch 1");
  t.deepEqual(ckpt.ids, { jobId: 'job', epoch: 3, checkpointId: 12 });
  t.false(ckpt.retryable);
  t.is(ckpt.cause, err);

  const unknown = await t.throwsAsync(c.client.getJob({ jobId: 'nope' }));
  t.deepEqual(errorInfo(unknown), {
    code: grpc.status.NOT_FOUND,
    reason: 'UNKNOWN_JOB',
    ids: { jobId: 'nope' },
    message: 'UNKNOWN_JOB: no job nope',
    retryable: false,
  });
  t.is(errorReason(new Error('plain')), undefined);
  t.is(errorInfo(new Error('plain')), undefined);
});

test('a call without a reason gets one from its status code', async (t) => {
  const c = await startTestCoordinator(t, servers, { maxMessageBytes: 64 * 1024 });
  // The coordinator refuses a bad id itself, with a reason...
  const malformed = await t.throwsAsync(c.client.getJob({ jobId: 'x'.repeat(200) }));
  t.like(errorInfo(malformed), { code: grpc.status.INVALID_ARGUMENT, reason: 'MALFORMED' });
  // ...but a message over its size limit is refused by grpc-js before any handler runs.
  const oversized = await t.throwsAsync(c.client.getJob({ jobId: 'x'.repeat(100_000) }));
  t.like(errorInfo(oversized), { code: grpc.status.RESOURCE_EXHAUSTED, reason: undefined });
  t.is(errorReason(oversized), undefined);
  t.like(toCkptError(oversized), { reason: 'OVERSIZED', retryable: false });

  const down = createCoordinatorClient('127.0.0.1:1');
  t.teardown(() => down.close());
  const unreachable = await t.throwsAsync(down.getJob({ jobId: 'x' }, { deadlineMs: 500 }));
  t.is(errorReason(unreachable), undefined);
  t.like(toCkptError(unreachable), { reason: 'UNAVAILABLE', retryable: true });
});

test('deadlines and abort signals end a call', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1, { maxConcurrent: 2 });
  await c.client.submitJob({ spec });
  // A silent task: no checkpoint finishes, so a trigger that waits for one ends only by its deadline or signal.
  await c.worker({ jobId: 'job', spec, workerId: 'w', taskIds: ['t00000'], behaviour: 'silent' });
  const pendingCheckpoints = async (): Promise<number> =>
    (await c.query.listCheckpoints({ jobId: 'job' })).checkpoints.filter((s) => s.state === 'CHECKPOINT_STATE_PENDING')
      .length;

  const late = await t.throwsAsync(c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 1000 }));
  t.is(errorInfo(late)?.code, grpc.status.DEADLINE_EXCEEDED);
  t.like(toCkptError(late), { reason: 'UNAVAILABLE', retryable: true });
  // The call ended; the checkpoint it started goes on.
  await eventually(async () => (await pendingCheckpoints()) === 1, { what: 'one pending checkpoint' });

  const controller = new AbortController();
  const pending = c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { signal: controller.signal });
  await eventually(async () => (await pendingCheckpoints()) === 2, { what: 'a second pending checkpoint' });
  controller.abort();
  const canceled = await t.throwsAsync(pending);
  t.true(isCancelled(canceled));
  t.like(toCkptError(canceled), { reason: 'CANCELED', retryable: false });
  t.is(await pendingCheckpoints(), 2);
});

test('watchCheckpoints yields summaries and cancels the stream when the consumer stops', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1);
  await c.client.submitJob({ spec });
  await c.worker({ jobId: 'job', spec, workerId: 'w', taskIds: ['t00000'] });
  const trigger = async (): Promise<number> =>
    (await c.client.triggerCheckpoint({ jobId: 'job', wait: true })).checkpoint?.checkpointId ?? 0;
  // Each open watch is one subscriber of the coordinator's checkpoint events.
  const { events } = c.running.coordinator;
  const idle = events.size;

  const got: CheckpointSummary__Output[] = [];
  const watching = (async () => {
    for await (const summary of c.query.watchCheckpoints({ jobId: 'job' })) {
      got.push(summary);
      if (got.length === 3) break;
    }
  })();
  await eventually(() => events.size === idle + 1, { what: 'the watch subscribed' });
  const first = await trigger();
  const second = await trigger();
  await watching;
  t.deepEqual(
    got.map((s) => [s.jobId, s.checkpointId, s.state]),
    [
      ['job', first, 'CHECKPOINT_STATE_PENDING'],
      ['job', first, 'CHECKPOINT_STATE_COMPLETED'],
      ['job', second, 'CHECKPOINT_STATE_PENDING'],
    ],
  );
  await eventually(() => events.size === idle, { what: 'the coordinator saw the stream cancelled' });

  const controller = new AbortController();
  const ids: number[] = [];
  const aborted = (async () => {
    for await (const summary of c.query.watchCheckpoints({ jobId: 'job' }, { signal: controller.signal }))
      ids.push(summary.checkpointId);
  })();
  await eventually(() => events.size === idle + 1, { what: 'the second watch subscribed' });
  const third = await trigger();
  await eventually(() => ids.length === 2, { what: 'the third checkpoint watched' });
  controller.abort();
  await t.notThrowsAsync(aborted, 'an aborted watch ends without an error');
  t.deepEqual(ids, [third, third]);
  await eventually(() => events.size === idle, { what: 'the coordinator saw the aborted stream' });

  const unknown = await t.throwsAsync(c.query.watchCheckpoints({ jobId: 'nope' }).next());
  t.like(errorInfo(unknown), { code: grpc.status.NOT_FOUND, reason: 'UNKNOWN_JOB', ids: { jobId: 'nope' } });
});

test('watchCheckpoints says when the stream is live, before any event, so that nothing after it is missed', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = sourcesSpec('job', 1);
  await c.client.submitJob({ spec });
  await c.worker({ jobId: 'job', spec, workerId: 'w', taskIds: ['t00000'] });
  const controller = new AbortController();
  t.teardown(() => controller.abort());
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const got: CheckpointSummary__Output[] = [];
  const watching = (async () => {
    const options = { signal: controller.signal, onOpen: () => opened() };
    for await (const summary of c.query.watchCheckpoints({ jobId: 'job' }, options)) {
      got.push(summary);
      if (got.length === 2) break;
    }
  })();
  // No checkpoint runs yet: the coordinator says the watch is live on its own.
  const timeout = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 10_000).unref());
  t.is(await Promise.race([open.then(() => 'open' as const), timeout]), 'open');
  t.deepEqual(got, [], 'live before any event');
  const id = (await c.client.triggerCheckpoint({ jobId: 'job', wait: true })).checkpoint?.checkpointId ?? 0;
  await watching;
  t.deepEqual(
    got.map((s) => [s.checkpointId, s.state]),
    [
      [id, 'CHECKPOINT_STATE_PENDING'],
      [id, 'CHECKPOINT_STATE_COMPLETED'],
    ],
  );
});
