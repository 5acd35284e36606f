import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import {
  ckptGrpc,
  createCoordinatorClient,
  createQueryClient,
  errorInfo,
  errorReason,
  isCancelled,
  toCkptError,
} from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { failure } from './stub-coordinator.js';

interface Seen {
  metadata: grpc.Metadata[];
  watchCancelled: boolean;
}

/** A server whose handlers exercise the client: errors with reasons, slow calls, a stream. */
async function server(t: ExecutionContext): Promise<{ address: string; seen: Seen }> {
  const seen: Seen = { metadata: [], watchCancelled: false };
  const s = new grpc.Server();
  const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<never>): void =>
    cb({ code: grpc.status.UNIMPLEMENTED, details: 'stub' });
  s.addService(ckptGrpc().Coordinator.service, {
    GetJob: (call: grpc.ServerUnaryCall<{ jobId: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.metadata.push(call.metadata);
      cb(
        failure({
          code: grpc.status.FAILED_PRECONDITION,
          reason: 'STALE_EPOCH',
          message: 'epoch 3 is not 4',
          ids: { 'ckpt-job-id': call.request.jobId, 'ckpt-epoch': '3', 'ckpt-checkpoint-id': '12' },
        }),
      );
    },
    SubmitJob: (call: grpc.ServerUnaryCall<{ spec: unknown }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.metadata.push(call.metadata);
      cb(null, { job: { spec: call.request.spec, epoch: 1 }, created: true });
    },
    TriggerCheckpoint: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      setTimeout(() => cb(null, {}), 2000);
    },
    CancelJob: unimplemented,
    Attach: () => {},
    AcknowledgeCheckpoint: unimplemented,
    DeclineCheckpoint: unimplemented,
  });
  s.addService(ckptGrpc().CheckpointQuery.service, {
    ListJobs: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      seen.metadata.push(call.metadata);
      cb(null, { jobs: [], nextPageToken: '' });
    },
    WatchCheckpoints: (call: grpc.ServerWritableStream<{ jobId: string }, unknown>) => {
      for (let id = 1; id <= 3; id++) call.write({ checkpoint: { jobId: call.request.jobId, checkpointId: id } });
      call.on('cancelled', () => {
        seen.watchCancelled = true;
      });
    },
    ListCheckpoints: unimplemented,
    GetCheckpoint: unimplemented,
  });
  const port = await new Promise<number>((resolve, reject) =>
    s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => s.forceShutdown());
  return { address: `127.0.0.1:${port}`, seen };
}

test('unary calls resolve with decoded responses and carry the bearer token', async (t) => {
  const { address, seen } = await server(t);
  const client = createCoordinatorClient(address, { token: 'sekret' });
  t.teardown(() => client.close());
  const response = await client.submitJob({ spec: { jobId: 'job', tasks: [{ taskId: 'a' }] } });
  t.true(response.created);
  t.is(response.job?.spec?.tasks[0]?.taskId, 'a');
  t.deepEqual(seen.metadata[0]?.get('authorization'), ['Bearer sekret']);

  const anonymous = createQueryClient(address);
  t.teardown(() => anonymous.close());
  await anonymous.listJobs();
  t.deepEqual(seen.metadata[1]?.get('authorization'), []);
});

test('errorReason and errorInfo read the reason and ids the server sends', async (t) => {
  const { address } = await server(t);
  const client = createCoordinatorClient(address);
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.getJob({ jobId: 'job' }));
  t.is(errorReason(err), 'STALE_EPOCH');
  t.deepEqual(errorInfo(err), {
    code: grpc.status.FAILED_PRECONDITION,
    reason: 'STALE_EPOCH',
    ids: { jobId: 'job', epoch: 3, checkpointId: 12 },
    message: 'STALE_EPOCH: epoch 3 is not 4',
  });
  const ckpt = toCkptError(err);
  t.is(ckpt.message, 'STALE_EPOCH: epoch 3 is not 4');
  t.deepEqual(ckpt.ids, { jobId: 'job', epoch: 3, checkpointId: 12 });
  t.false(ckpt.retryable);
  t.is(errorReason(new Error('plain')), undefined);
});

test('a call without a reason gets one from its status code', async (t) => {
  const { address } = await server(t);
  const client = createCoordinatorClient(address);
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.cancelJob({ jobId: 'job' }));
  t.is(errorReason(err), undefined);
  t.is(toCkptError(err).reason, 'INTERNAL');

  const down = createCoordinatorClient('127.0.0.1:1');
  t.teardown(() => down.close());
  const unreachable = toCkptError(await t.throwsAsync(down.getJob({ jobId: 'x' }, { deadlineMs: 500 })));
  t.is(unreachable.reason, 'UNAVAILABLE');
  t.true(unreachable.retryable);
});

test('deadlines and abort signals end a call', async (t) => {
  const { address } = await server(t);
  const client = createCoordinatorClient(address);
  t.teardown(() => client.close());
  const late = await t.throwsAsync(client.triggerCheckpoint({ jobId: 'job' }, { deadlineMs: 100 }));
  t.is((late as grpc.ServiceError).code, grpc.status.DEADLINE_EXCEEDED);

  const controller = new AbortController();
  const pending = client.triggerCheckpoint({ jobId: 'job' }, { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  t.true(isCancelled(await t.throwsAsync(pending)));
});

test('watchCheckpoints yields summaries and cancels the stream when the consumer stops', async (t) => {
  const { address, seen } = await server(t);
  const client = createQueryClient(address);
  t.teardown(() => client.close());
  const got: CheckpointSummary__Output[] = [];
  for await (const summary of client.watchCheckpoints({ jobId: 'job' })) {
    got.push(summary);
    if (got.length === 3) break;
  }
  t.deepEqual(
    got.map((s) => [s.jobId, s.checkpointId]),
    [
      ['job', 1],
      ['job', 2],
      ['job', 3],
    ],
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.true(seen.watchCancelled);

  const controller = new AbortController();
  const ids: number[] = [];
  setTimeout(() => controller.abort(), 100);
  for await (const summary of client.watchCheckpoints({ jobId: 'job' }, { signal: controller.signal }))
    ids.push(summary.checkpointId);
  t.deepEqual(ids, [1, 2, 3], 'an aborted watch ends without an error');
});
