/**
 * A savepoint restored into a job of another checkpoint mode: the pieces of
 * an ALIGNED job hold plain state (their handles say they hold no in-flight
 * records), so an UNALIGNED job started from its savepoint restores that
 * state as it is, for keyed state and for a task's own snapshot alike, and
 * goes on exactly once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  decodeKeyedState,
  Worker,
  type SnapshotEvent,
  type StateBackend,
  type Task,
  type WorkerEventMap,
} from '../../src/sdk/index.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { logSource, MemoryLog } from '../helpers/memory-source.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();

/** What one job's tasks processed, as they saw it. */
interface Seen {
  count: string[];
  own: string[];
}

/** `count` counts each record in keyed state; `own` keeps the records it saw in a snapshot of its own. */
function jobTasks(seen: Seen): { count: Task; own: Task } {
  let own: string[] = [];
  return {
    count: {
      process(record, ctx) {
        seen.count.push(record.text());
        ctx.state.set(record.text(), ((ctx.state.get(record.text()) as number | undefined) ?? 0) + 1);
      },
    },
    own: {
      process(record) {
        own.push(record.text());
        seen.own.push(record.text());
      },
      snapshot: () => new TextEncoder().encode(JSON.stringify(own)),
      restore(bytes) {
        own = bytes === undefined ? [] : (JSON.parse(new TextDecoder().decode(bytes)) as string[]);
        seen.own.push(...own.map((r) => `restored ${r}`));
      },
    },
  };
}

/** A started worker running every task of `jobId`; records its snapshots and failures. */
async function startWorker(
  t: ExecutionContext,
  c: TestCoordinator,
  jobId: string,
  state: StateBackend,
  log: MemoryLog,
  seen: Seen,
): Promise<{
  worker: Worker;
  snapshots: SnapshotEvent[];
  failures: WorkerEventMap['failed'][0][];
  restored: Promise<WorkerEventMap['restored']>;
}> {
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: `${jobId}-w`,
    state,
    logger: silentLogger(),
  });
  const { count, own } = jobTasks(seen);
  worker.addTask('src', logSource(log)).addTask('count', count).addTask('own', own);
  const snapshots: SnapshotEvent[] = [];
  const failures: WorkerEventMap['failed'][0][] = [];
  worker.on('snapshot', (e) => snapshots.push(e));
  worker.on('failed', (e) => failures.push(e));
  const restored = worker.waitFor('restored');
  t.teardown(() => worker.stop());
  await worker.start();
  return { worker, snapshots, failures, restored };
}

const TASKS: JobSpec['tasks'] = [
  { taskId: 'src' },
  { taskId: 'count', inputs: ['src'] },
  { taskId: 'own', inputs: ['src'] },
];

test("an UNALIGNED job started from an ALIGNED job's savepoint restores its state as it was", async (t) => {
  const c = await startTestCoordinator(t, servers);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-sp-mode-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  t.teardown(() => state.close());
  const log = new MemoryLog();
  const first = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];

  await c.client.submitJob({ spec: { jobId: 'sp-aligned', tasks: TASKS } });
  const seenA: Seen = { count: [], own: [] };
  const a = await startWorker(t, c, 'sp-aligned', state, log, seenA);
  await c.started('sp-aligned');
  log.push(...first);
  await eventually(() => seenA.count.length === first.length && seenA.own.length === first.length, {
    what: 'job sp-aligned processing the first records',
  });
  const savepoint = await c.client.triggerSavepoint({ jobId: 'sp-aligned', stop: true }, { deadlineMs: 30_000 });
  t.is(savepoint.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', savepoint.checkpoint?.abortMessage);
  const ref = savepoint.savepoint?.ref;
  if (ref === undefined || ref === null) throw new Error('the savepoint has no reference');
  await a.worker.stop();
  const restoredPieces = a.snapshots.filter((e) => e.checkpointId === ref.checkpointId);
  t.deepEqual(restoredPieces.map((e) => e.taskId).sort(), ['count', 'own', 'src'], 'every task took the savepoint');

  const spec: JobSpec = { jobId: 'sp-unaligned', tasks: TASKS, policy: { mode: 'CHECKPOINT_MODE_UNALIGNED' } };
  t.true((await c.client.submitJob({ spec, fromSavepoint: ref })).created);
  const seenB: Seen = { count: [], own: [] };
  const b = await startWorker(t, c, 'sp-unaligned', state, log, seenB);
  const [restored] = await b.restored;
  t.deepEqual(
    b.failures.map((f) => `${f.taskId}: ${f.error.message}`),
    [],
    'no task fails its restore',
  );
  t.deepEqual(restored.taskIds.sort(), ['count', 'own', 'src'], 'every task restored the savepoint');
  await c.started('sp-unaligned');
  t.deepEqual(
    seenB.own,
    first.map((r) => `restored ${r}`),
    "the task's own snapshot is restored as the aligned job stored it",
  );

  const more = ['r7', 'r8'];
  log.push(...more);
  await eventually(() => seenB.count.length === more.length && seenB.own.length === first.length + more.length, {
    what: 'job sp-unaligned processing the new records',
  });
  t.deepEqual(seenB.count, more, 'the source resumes after the savepoint');
  const checkpoint = await c.client.triggerCheckpoint({ jobId: 'sp-unaligned', wait: true }, { deadlineMs: 30_000 });
  t.is(checkpoint.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', checkpoint.checkpoint?.abortMessage);
  const taken = (taskId: string): Uint8Array => {
    const event = b.snapshots.find(
      (e) => e.taskId === taskId && e.checkpointId === checkpoint.checkpoint?.checkpointId,
    );
    if (event === undefined) throw new Error(`no snapshot of ${taskId}`);
    return event.bytes;
  };
  // Checkpoint ids go on from the savepoint's: the first of the job is a full piece of every key.
  const counts = Object.fromEntries(decodeKeyedState(taken('count')));
  t.deepEqual(counts, Object.fromEntries([...first, ...more].map((r) => [r, 1])), 'each record counted once');
  t.deepEqual(JSON.parse(new TextDecoder().decode(taken('own'))), [...first, ...more]);
  t.deepEqual(b.failures, []);
});
