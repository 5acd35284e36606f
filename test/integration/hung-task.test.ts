/**
 * Hung tasks: a call of a task's code that does not return, a snapshot
 * that runs past its limit, or a task its still-heartbeating worker stops
 * reporting fails that task, and the job recovers instead of waiting out
 * checkpoint timeouts. The SDK abandons the hung call so that the task can
 * restore.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { errorInfo } from '../../src/client/index.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';
import { silentLogger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  decodeKeyedState,
  Worker,
  type DataRecord,
  type Task,
  type TaskContext,
} from '../../src/sdk/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers();

/** What the coordinator logged about hung tasks: `taskId: why`. */
interface HungLog {
  lines: string[];
}

async function coordinatorWithHungLog(t: ExecutionContext): Promise<{ c: TestCoordinator; hung: HungLog }> {
  const hung: HungLog = { lines: [] };
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; taskId?: string; why?: string };
        if (entry.msg === 'task hung') hung.lines.push(`${entry.taskId ?? ''}: ${entry.why ?? ''}`);
      },
    },
  );
  return { c: await startTestCoordinator(t, servers, {}, { logger }), hung };
}

/** Runs `src` → `count` under `policy` in one worker; `count` is `task`. */
async function runJob(t: ExecutionContext, c: TestCoordinator, policy: CheckpointPolicy, task: Task): Promise<Worker> {
  const spec = { jobId: 'job', tasks: [{ taskId: 'src' }, { taskId: 'count', inputs: ['src'] }], policy };
  await c.client.submitJob({ spec });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-hung-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId: 'job',
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir }),
    abandonCallAfterMs: 300,
    logger: silentLogger(),
  });
  worker.addTask('src', fixedSource(50));
  worker.addTask('count', task);
  t.teardown(() => worker.stop());
  await worker.start();
  return worker;
}

function count(record: DataRecord, ctx: TaskContext): void {
  ctx.state.set(record.text(), ((ctx.state.get(record.text()) as number | undefined) ?? 0) + 1);
}

/** After the recovery: a checkpoint completes and `count` holds each of the 50 records once. */
async function countsOnce(t: ExecutionContext, c: TestCoordinator, worker: Worker): Promise<void> {
  await c.started('job');
  const snapshots: Uint8Array[] = [];
  worker.on('snapshot', (e) => {
    if (e.taskId === 'count') snapshots.push(e.bytes);
  });
  const done = await c.client.triggerCheckpoint({ jobId: 'job', wait: true }, { deadlineMs: 20_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(() => snapshots.length > 0);
  t.deepEqual([...decodeKeyedState(snapshots[0]!).entries()], [['x', 50]]);
}

test('a call of a task that never returns fails the task; the call is abandoned and the job recovers', async (t) => {
  const { c, hung } = await coordinatorWithHungLog(t);
  let hangs = 1;
  const worker = await runJob(
    t,
    c,
    { taskStallTimeoutMs: 1000, tolerableFailures: -1 },
    {
      process(record, ctx) {
        if (hangs-- > 0) return new Promise<void>(() => {});
        count(record, ctx);
        return undefined;
      },
    },
  );
  const epoch = worker.epoch;
  await eventually(() => worker.epoch > epoch, { timeoutMs: 20_000, what: 'a recovery' });
  t.regex(
    hung.lines[0] ?? '',
    /^count: a call of its code has not returned for \d+ ms \(task_stall_timeout_ms 1000\)$/,
  );
  await countsOnce(t, c, worker);
});

test('a snapshot running past snapshot_timeout_ms fails the task and the job recovers', async (t) => {
  const { c, hung } = await coordinatorWithHungLog(t);
  let slow = 1;
  const worker = await runJob(
    t,
    c,
    { snapshotTimeoutMs: 500, tolerableFailures: -1 },
    {
      process: count,
      async snapshot(ctx) {
        if (slow-- > 0) await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
        return new TextEncoder().encode(JSON.stringify([...ctx.state.entries()]));
      },
      restore(bytes, ctx) {
        if (bytes === undefined) return;
        for (const [k, v] of JSON.parse(new TextDecoder().decode(bytes)) as [string, number][]) ctx.state.set(k, v);
      },
    },
  );
  await c.started('job');
  const epoch = worker.epoch;
  const pending = await c.client.triggerCheckpoint({ jobId: 'job' });
  await eventually(() => worker.epoch > epoch, { timeoutMs: 20_000, what: 'a recovery' });
  t.regex(
    hung.lines[0] ?? '',
    new RegExp(
      `^count: its snapshot of checkpoint ${pending.checkpoint?.checkpointId} has run \\d+ ms \\(snapshot_timeout_ms 500\\)$`,
    ),
  );
  const aborted = await c.query.getCheckpoint({ jobId: 'job', checkpointId: pending.checkpoint?.checkpointId ?? 0 });
  t.is(aborted.checkpoint?.state, 'CHECKPOINT_STATE_ABORTED');
});

test('a task its heartbeating worker stops reporting is hung; a report naming a task not attached is refused', async (t) => {
  const { c, hung } = await coordinatorWithHungLog(t);
  const spec = fanInSpec('job', 1, 1, { taskStallTimeoutMs: 1000, tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const call = c.client.attach();
  const commands: AttachResponse__Output[] = [];
  let failure: grpc.ServiceError | undefined;
  call.on('data', (m: AttachResponse__Output) => commands.push(m));
  call.on('error', (err: grpc.ServiceError) => (failure = err));
  t.teardown(() => call.cancel());
  call.write({ hello: { workerId: 'raw', jobId: 'job', taskIds: ['src-0', 'sink-0'] } });
  const restore = await eventually(() => commands.find((m) => m.restore)?.restore);
  call.write({ ready: { epoch: restore.epoch, taskIds: ['src-0', 'sink-0'] } });
  await c.started('job');

  const health = (taskIds: string[]) => ({
    heartbeat: { sentAtMs: Date.now(), tasks: taskIds.map((taskId) => ({ taskId, busyMs: 0, snapshotMs: 0 })) },
  });
  call.write(health(['src-0', 'sink-0']));
  // From now on the worker heartbeats but leaves sink-0 out.
  const beat = setInterval(() => call.write(health(['src-0'])), 200);
  t.teardown(() => clearInterval(beat));
  const next = await eventually(() => commands.find((m) => m.restore && m.restore.epoch > restore.epoch), {
    timeoutMs: 10_000,
    what: 'a restore in a new epoch',
  });
  clearInterval(beat);
  t.truthy(next);
  t.regex(hung.lines[0] ?? '', /^sink-0: its worker still heartbeats but has not reported it for \d+ ms/);

  call.write(health(['ghost']));
  await eventually(() => failure);
  t.is(errorInfo(failure)?.reason, 'TASK_NOT_ATTACHED');
});
