/**
 * Records of another epoch never reach a task: after a recovery, whatever
 * was in flight before it, or anything published with a wrong epoch, is
 * dropped by the SDK, and acknowledgements of an older epoch are refused
 * by the coordinator. A barrier that counts more records than its edge
 * delivered (records lost in transit) fails the reader, and the job
 * recovers instead of committing state without them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { barrierHeaders, controlMessageCodecs, epochHeaders } from '../../src/bus/index.js';
import { errorInfo } from '../../src/client/index.js';
import { silentLogger } from '../../src/log/index.js';
import { createLocalDirectoryBackend, decodeKeyedState, edgeSubject, Worker } from '../../src/sdk/index.js';
import { natsConnection } from '../helpers/clients.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers();

/** A worker running `src` → `count` of `jobId`, started. */
async function countingWorker(
  t: ExecutionContext,
  c: Awaited<ReturnType<typeof startTestCoordinator>>,
  jobId: string,
): Promise<Worker> {
  const spec = {
    jobId,
    tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }],
    policy: { tolerableFailures: -1 },
  };
  await c.client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-epoch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    logger: silentLogger(),
  });
  worker.addTask('src', fixedSource(50));
  worker.addTask('count', {
    process(record, ctx) {
      ctx.state.set(record.text(), ((ctx.state.get(record.text()) as number | undefined) ?? 0) + 1);
    },
  });
  t.teardown(() => worker.stop());
  await worker.start();
  await c.started(jobId);
  return worker;
}

test('records of a stale or unknown epoch are dropped; an acknowledgement of an old epoch is refused', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const worker = await countingWorker(t, c, 'epochs');

  const nc = await natsConnection(t, servers.natsUrl);
  const edge = edgeSubject(`${c.prefix.nats}.epochs`, 'src', 'count');
  const epoch = worker.epoch;
  nc.publish(edge, 'stale', { headers: epochHeaders(epoch - 1) });
  nc.publish(edge, 'future', { headers: epochHeaders(epoch + 7) });
  nc.publish(edge, 'bare');
  await nc.flush();

  const snapshots: Uint8Array[] = [];
  worker.on('snapshot', (e) => {
    if (e.taskId === 'count') snapshots.push(e.bytes);
  });
  const done = await c.client.triggerCheckpoint({ jobId: 'epochs', wait: true }, { deadlineMs: 20_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(() => snapshots.length > 0);
  const state = decodeKeyedState(snapshots[0]!);
  t.deepEqual([...state.entries()], [['x', 50]], 'only the 50 records of the current epoch were processed');

  const stale = await t.throwsAsync(
    c.client.acknowledgeCheckpoint({
      jobId: 'epochs',
      epoch: epoch - 1,
      checkpointId: done.checkpoint?.checkpointId ?? 0,
      workerId: 'w',
      snapshots: [{ taskId: 'count' }],
      sessionToken: worker.welcome?.sessionToken ?? '',
    }),
  );
  t.is(errorInfo(stale)?.reason, 'STALE_EPOCH');
});

test('a barrier counting records its edge never delivered fails the reader, and the job recovers', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const worker = await countingWorker(t, c, 'lossy');
  const done = await c.client.triggerCheckpoint({ jobId: 'lossy', wait: true }, { deadlineMs: 20_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  const failures: string[] = [];
  worker.on('failed', (e) => failures.push(`${e.taskId}: ${e.error.message}`));

  // What the reader sees when records vanished in transit: a barrier of the
  // current epoch saying more records were sent on the edge than arrived.
  const nc = await natsConnection(t, servers.natsUrl);
  const epoch = worker.epoch;
  const barrier = controlMessageCodecs().barrier.encode({
    jobId: 'lossy',
    checkpointId: (done.checkpoint?.checkpointId ?? 0) + 1000,
    epoch,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    fromTaskId: 'src',
    records: 50 + 7,
  });
  nc.publish(edgeSubject(`${c.prefix.nats}.lossy`, 'src', 'count'), barrier, { headers: barrierHeaders(epoch) });
  await nc.flush();

  await eventually(() => worker.epoch > epoch, { timeoutMs: 20_000 });
  t.regex(
    failures[0] ?? '',
    /^count: UNAVAILABLE: records lost on edge src -> count in epoch \d+: 57 sent before barrier \d+, 50 received$/,
  );
  await c.started('lossy');
  const snapshots: Uint8Array[] = [];
  worker.on('snapshot', (e) => {
    if (e.taskId === 'count') snapshots.push(e.bytes);
  });
  const again = await c.client.triggerCheckpoint({ jobId: 'lossy', wait: true }, { deadlineMs: 20_000 });
  t.is(again.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(() => snapshots.length > 0);
  t.deepEqual([...decodeKeyedState(snapshots[0]!).entries()], [['x', 50]], 'restored, not double counted');
});
