/**
 * The cleanup of task state against the real coordinator, etcd and NATS,
 * with SDK workers storing snapshots in a JetStream object store bucket or
 * a local directory: after declined and timed-out checkpoints, a worker
 * that left and a canceled job, nothing is left that no retained checkpoint
 * names, and every piece a retained checkpoint names still reads back
 * verified. A checkpoint that builds on a released shared piece is refused.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { handleUris } from '../../src/core/shared-state-registry.js';
import { silentLogger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  Worker,
  type StateBackend,
} from '../../src/sdk/index.js';
import { natsConnection } from '../helpers/clients.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { uniquePrefix } from '../helpers/prefix.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, tickingSource } from './worker-harness.js';

const servers = useServers();

/** Sweeps often, and takes any piece no checkpoint can commit any more for an orphan at once. */
const CLEANUP = { orphanGraceMs: 0, stateSweepIntervalMs: 200, canceledStateRetentionMs: 0 };

/** Manual checkpoints only; a snapshot slower than the timeout fails its task. */
const POLICY = { intervalMs: 0, retained: 2, tolerableFailures: -1, timeoutMs: 1000 };

/** What each scenario runs on: a fresh backend per worker, and the storage as the test sees it. */
interface Storage {
  kind: 'dir' | 'nats-obj';
  backend(): Promise<StateBackend>;
}

async function objectStorage(t: ExecutionContext): Promise<Storage> {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = `state-${uniquePrefix(t).nats}`;
  t.teardown(async () => {
    const store = await new Objm(nc).open(bucket).catch(() => undefined);
    await store?.destroy();
  });
  return { kind: 'nats-obj', backend: () => createObjectStoreBackend({ connection: nc, bucket }) };
}

async function directoryStorage(t: ExecutionContext): Promise<Storage> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cleanup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { kind: 'dir', backend: () => createLocalDirectoryBackend({ dir, fsync: false }) };
}

/** How a worker's backend misbehaves for the sink: declines some checkpoints, is too slow for one. */
interface Faults {
  declined: (checkpointId: number) => boolean;
  slow: (checkpointId: number) => boolean;
}

/**
 * `inner`, with the sink's puts failing or stalling as `faults` says (a
 * stalled put has stored its piece); `stored` collects, per checkpoint id,
 * the uris of the pieces it stored.
 */
function faulty(inner: StateBackend, faults: Faults, stored: Map<number, string[]>): StateBackend {
  return {
    async put(key, bytes, signal) {
      if (key.taskId === 'sink' && faults.declined(key.checkpointId)) throw new Error('disk full (test)');
      const handle = await inner.put(key, bytes, signal);
      stored.set(key.checkpointId, [...(stored.get(key.checkpointId) ?? []), handle.uri]);
      if (key.taskId === 'sink' && faults.slow(key.checkpointId)) await delay(2500);
      return handle;
    },
    get: (handle, signal, owner) => inner.get(handle, signal, owner),
    discard: (jobId, uris) => inner.discard(jobId, uris),
    listPieces: (jobId) => inner.listPieces(jobId),
    close: () => inner.close(),
  };
}

/** Starts a worker running the job's source and sink. */
async function startWorker(
  t: ExecutionContext,
  c: TestCoordinator,
  jobId: string,
  workerId: string,
  state: StateBackend,
): Promise<Worker> {
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId,
    state,
    logger: silentLogger(),
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  });
  // The source keeps state too: its pieces of checkpoints the sink declines become orphans.
  const source = {
    ...tickingSource(5),
    snapshot: () => new TextEncoder().encode(`source of ${workerId}`),
    restore: () => {},
  };
  worker.addTask('src', source).addTask('sink', countingSink([]));
  t.teardown(() => worker.stop());
  await worker.start();
  await c.started(jobId);
  return worker;
}

/** Triggers checkpoints one after another until `completed` of them have completed. */
async function checkpoints(c: TestCoordinator, jobId: string, completed: number): Promise<CheckpointSummary__Output[]> {
  const finished: CheckpointSummary__Output[] = [];
  await eventually(
    async () => {
      const res = await c.client
        .triggerCheckpoint({ jobId, wait: true })
        .catch(() => undefined /* recovering: try again */);
      if (res?.checkpoint != null) finished.push(res.checkpoint);
      return finished.filter((s) => s.state === 'CHECKPOINT_STATE_COMPLETED').length >= completed;
    },
    { timeoutMs: 60_000, pollMs: 50, what: `${completed} completed checkpoints of ${jobId}` },
  );
  return finished;
}

/** Every handle of every retained manifest of the job. */
async function retainedHandles(c: TestCoordinator, jobId: string): Promise<StateHandle__Output[]> {
  const { checkpoints: listed } = await c.query.listCheckpoints({ jobId, pageSize: 1000 });
  const handles: StateHandle__Output[] = [];
  for (const s of listed.filter((s) => s.state === 'CHECKPOINT_STATE_COMPLETED')) {
    const { manifest } = await c.query.getCheckpoint({ jobId, checkpointId: s.checkpointId });
    for (const task of manifest?.tasks ?? [])
      if (task.state !== null && task.state.uri !== '') handles.push(task.state);
  }
  return handles;
}

/** Waits until the job's pieces in storage are exactly those its retained checkpoints name. */
async function onlyRetainedLeft(c: TestCoordinator, jobId: string, backend: StateBackend): Promise<string[]> {
  return eventually(
    async () => {
      const named = new Set(handleUris(await retainedHandles(c, jobId)));
      const stored = (await backend.listPieces(jobId)).map((p) => p.uri).sort();
      return stored.length === named.size && stored.every((uri) => named.has(uri)) ? stored : undefined;
    },
    { timeoutMs: 20_000, pollMs: 100, what: `only the retained pieces of ${jobId} left` },
  );
}

/** Reads every handle a retained checkpoint names back through the backend, verified. */
async function verifyRetained(
  t: ExecutionContext,
  c: TestCoordinator,
  jobId: string,
  backend: StateBackend,
): Promise<void> {
  const handles = await retainedHandles(c, jobId);
  t.true(handles.length > 0);
  for (const handle of handles) await t.notThrowsAsync(backend.get(handle, undefined, { jobId }), handle.uri);
}

async function scenario(t: ExecutionContext, storage: Storage): Promise<void> {
  const c = await startTestCoordinator(t, servers, CLEANUP);
  const spec = (jobId: string) => ({
    jobId,
    tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
    policy: POLICY,
  });
  await c.client.submitJob({ spec: spec('keep') });
  await c.client.submitJob({ spec: spec('gone') });
  const look = await storage.backend();
  t.teardown(() => look.close());

  // A worker whose sink declines every third checkpoint and stalls past the timeout on the fifth.
  const faults = { declined: (id: number) => id % 3 === 0, slow: (id: number) => id === 5 };
  const stored = new Map<number, string[]>();
  const first = await startWorker(t, c, 'keep', 'first', faulty(await storage.backend(), faults, stored));
  const before = await checkpoints(c, 'keep', 4);
  t.true(
    before.some((s) => s.abortReason === 'ABORT_REASON_DECLINED'),
    JSON.stringify(before.map((s) => s.abortReason)),
  );
  // The worker leaves; another takes its tasks over, restored from the latest checkpoint.
  await first.stop();
  const second = await startWorker(t, c, 'keep', 'second', await storage.backend());
  await checkpoints(c, 'keep', 3);

  // A job that checkpoints, then is canceled with its worker still attached.
  const doomed = await startWorker(t, c, 'gone', 'doomed', await storage.backend());
  await checkpoints(c, 'gone', 2);
  t.true((await look.listPieces('gone')).length > 0);
  await c.client.cancelJob({ jobId: 'gone' });

  const gc = await c.client.collectGarbage({ jobId: 'keep', dryRun: false });
  t.deepEqual(
    gc.unreachable.filter((u) => /could not/.test(u)),
    [],
  );
  t.is((await onlyRetainedLeft(c, 'keep', look)).length, 2 * POLICY.retained, 'a piece per task and checkpoint');
  await verifyRetained(t, c, 'keep', look);
  // Pieces of checkpoints that never committed were stored, and are gone.
  const committed = new Set(before.filter((s) => s.state === 'CHECKPOINT_STATE_COMPLETED').map((s) => s.checkpointId));
  const orphans = [...stored].filter(([id]) => !committed.has(id)).flatMap(([, uris]) => uris);
  t.true(orphans.length > 0, 'the declined and stalled checkpoints left pieces');
  const left = new Set((await look.listPieces('keep')).map((p) => p.uri));
  t.deepEqual(
    orphans.filter((uri) => left.has(uri)),
    [],
  );

  // Object store pieces the coordinator deletes; file pieces the canceled job's worker deletes as it stops.
  await eventually(async () => (await look.listPieces('gone')).length === 0, {
    what: "the canceled job's pieces gone",
  });
  await doomed.stop();
  await second.stop();
  const dry = await c.client.collectGarbage({ jobId: 'gone', dryRun: true });
  t.true(dry.dryRun);
  // File pieces are deleted by workers, which do not confirm it: the coordinator may still list
  // those it released until a listing shows them gone. None of them is still stored.
  if (storage.kind === 'dir') {
    const stored = new Set((await look.listPieces('gone')).map((p) => p.uri));
    t.deepEqual(
      dry.pieces.filter((p) => stored.has(p.uri)),
      [],
    );
  } else t.is(dry.pieces.length, 0);
  if (storage.kind === 'dir')
    t.true(
      dry.unreachable.some((u) => /file pieces of job gone/.test(u)),
      dry.unreachable.join('\n'),
    );
  // With no worker left, what retained checkpoints name is still there.
  await verifyRetained(t, c, 'keep', look);
}

test('object store: only what retained checkpoints name is left, and all of it reads back', async (t) => {
  await scenario(t, await objectStorage(t));
});

test('local directory: only what retained checkpoints name is left, and all of it reads back', async (t) => {
  await scenario(t, await directoryStorage(t));
});

test('a shared piece stays while a retained checkpoint names it; a checkpoint built on a released one is refused, also after a restart', async (t) => {
  const storage = await objectStorage(t);
  const c = await startTestCoordinator(t, servers, CLEANUP);
  await c.client.submitJob({
    spec: {
      jobId: 'inc',
      tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
      policy: { ...POLICY, retained: 1 },
    },
  });
  const inner = await storage.backend();
  const look = await storage.backend();
  t.teardown(() => look.close());
  // The sink's first piece is the base that later snapshots name as shared while `sharing` is set.
  let base: StateHandle__Output | undefined;
  let sharing = false;
  const incremental: StateBackend = {
    async put(key, bytes, signal) {
      const handle = await inner.put(key, bytes, signal);
      if (key.taskId !== 'sink') return handle;
      base ??= handle;
      return sharing ? { ...handle, shared: [base] } : handle;
    },
    get: (handle, signal, owner) => inner.get(handle, signal, owner),
    discard: (jobId, uris) => inner.discard(jobId, uris),
    listPieces: (jobId) => inner.listPieces(jobId),
    close: () => inner.close(),
  };
  await startWorker(t, c, 'inc', 'w', incremental);
  const trigger = async (): Promise<CheckpointSummary__Output> => {
    const res = await c.client.triggerCheckpoint({ jobId: 'inc', wait: true });
    if (res.checkpoint === null) throw new Error('no checkpoint');
    return res.checkpoint;
  };

  t.is((await trigger()).state, 'CHECKPOINT_STATE_COMPLETED');
  const basePiece = base;
  if (basePiece === undefined) throw new Error('the sink stored no piece');
  sharing = true;
  t.is((await trigger()).state, 'CHECKPOINT_STATE_COMPLETED');
  t.is((await trigger()).state, 'CHECKPOINT_STATE_COMPLETED');
  await c.client.collectGarbage({ jobId: 'inc', dryRun: false });
  await t.notThrowsAsync(look.get(basePiece), 'retention dropped the base checkpoint, but later ones name the piece');

  sharing = false;
  t.is((await trigger()).state, 'CHECKPOINT_STATE_COMPLETED');
  await eventually(async () => !(await look.listPieces('inc')).some((p) => p.uri === basePiece.uri), {
    what: 'the base piece deleted once no retained checkpoint names it',
  });

  // A new coordinator rebuilds the registry from etcd and refuses the same.
  await c.restart();
  await c.started('inc');
  sharing = true;
  const refused = await eventually(() => trigger().catch(() => undefined), {
    timeoutMs: 20_000,
    what: 'a checkpoint after the restart',
  });
  t.is(refused.state, 'CHECKPOINT_STATE_ABORTED');
  t.is(refused.abortReason, 'ABORT_REASON_COMMIT_FAILED');
  t.true(refused.abortMessage.includes(basePiece.uri), refused.abortMessage);
  t.regex(refused.abortMessage, /builds on shared pieces that no retained checkpoint or savepoint names/);
});

test('CollectGarbage refuses an unknown job as the other calls do', async (t) => {
  const c = await startTestCoordinator(t, servers, CLEANUP);
  const err = await t.throwsAsync(c.client.collectGarbage({ jobId: 'nope', dryRun: true }));
  t.regex(err?.message ?? '', /UNKNOWN_JOB/);
});
