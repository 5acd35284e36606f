/**
 * A restore command larger than grpc-js's default limit of 4 MiB restores
 * through the SDK: the worker's channel takes messages as large as the
 * coordinator sends (64 MiB by default). The tasks' snapshots share many
 * pieces, so that the manifest entries of the worker's tasks, and the
 * restore command that carries them, grow past 4 MiB.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQueryClient, errorInfo } from '../../src/client/index.js';
import type { RestoreCommand } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { RestoreCommand__Output } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { codec } from '../../src/proto/index.js';
import { createLocalDirectoryBackend, Worker, type SourceTask, type StateBackend } from '../../src/sdk/index.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import * as grpc from '@grpc/grpc-js';

const servers = useServers();

const MIB = 1024 * 1024;
const TASKS = ['t0', 't1', 't2'];
/** Shared pieces per snapshot: under the coordinator's 10,000, enough for 3 tasks to pass 4 MiB. */
const PIECES = 9000;

/** Puts snapshots as `inner` does, each naming `PIECES` shared pieces beside it (valid handles, never read). */
function withSharedPieces(inner: StateBackend): StateBackend {
  return {
    async put(key, bytes, signal) {
      const handle = await inner.put(key, bytes, signal);
      const folder = handle.uri.slice(0, handle.uri.lastIndexOf('/'));
      const shared: StateHandle__Output[] = Array.from({ length: PIECES }, (_, i) => ({
        uri: `${folder}/pieces/${'incremental-piece-'.repeat(3)}${i}`,
        sizeBytes: 4096,
        checksum: `sha256:${createHash('sha256').update(`${key.taskId}/${i}`).digest('hex')}`,
        shared: [],
        compression: 'STATE_COMPRESSION_UNSPECIFIED',
        rawSizeBytes: 0,
        inFlightRecords: false,
      }));
      return { ...handle, shared };
    },
    get: (handle, signal, owner) => inner.get(handle, signal, owner),
    discard: (jobId, uris) => inner.discard(jobId, uris),
    listPieces: (jobId) => inner.listPieces(jobId),
    close: () => inner.close(),
  };
}

/** A source that reads nothing and snapshots `state of <task>`; what it restores goes to `restored`. */
function statefulSource(taskId: string, restored: Map<string, string>): SourceTask {
  return {
    async *read(_positions, ctx) {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      yield* [];
    },
    handle: () => {},
    snapshot: () => new TextEncoder().encode(`state of ${taskId}`),
    restore: (bytes) => {
      if (bytes !== undefined) restored.set(taskId, new TextDecoder().decode(bytes));
    },
  };
}

test('a restore command over 4 MiB restores through the SDK', async (t) => {
  const c = await startTestCoordinator(t, servers);
  await c.client.submitJob({ spec: { jobId: 'big', tasks: TASKS.map((taskId) => ({ taskId })) } });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-big-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const restored = new Map<string, string>();
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId: 'big',
    workerId: 'w',
    state: withSharedPieces(await createLocalDirectoryBackend({ dir, fsync: false })),
  });
  for (const taskId of TASKS) worker.addTask(taskId, statefulSource(taskId, restored));
  t.teardown(() => worker.stop());
  await worker.start();
  await c.started('big');
  const done = await c.client.triggerCheckpoint({ jobId: 'big', wait: true }, { deadlineMs: 60_000 });
  t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', done.checkpoint?.abortMessage);
  const checkpointId = done.checkpoint?.checkpointId ?? 0;

  // The restore command carries the manifest entries of the worker's tasks: more than 4 MiB.
  const { checkpoint } = await c.query.getCheckpoint({ jobId: 'big', checkpointId });
  t.truthy(checkpoint);
  const { manifest } = await c.query.getCheckpoint({ jobId: 'big', checkpointId });
  const command: RestoreCommand = { jobId: 'big', epoch: 2, checkpointId, snapshots: manifest?.tasks ?? [], term: 1 };
  const bytes = codec<RestoreCommand, RestoreCommand__Output>('RestoreCommand').encode(command).length;
  t.true(bytes > 4 * MIB, `the restore command takes ${(bytes / MIB).toFixed(1)} MiB`);
  const small = createQueryClient(c.address, { maxMessageBytes: 4 * MIB });
  t.teardown(() => small.close());
  const refused = await t.throwsAsync(small.getCheckpoint({ jobId: 'big', checkpointId }));
  t.is(errorInfo(refused)?.code, grpc.status.RESOURCE_EXHAUSTED, 'a 4 MiB client could not receive it');

  const restoring = worker.waitFor('restored', (e) => e.checkpointId === checkpointId, { timeoutMs: 30_000 });
  await c.client.restoreJob({ jobId: 'big', checkpointId });
  const [event] = await restoring;
  t.deepEqual([...event.taskIds].sort(), TASKS);
  t.deepEqual(Object.fromEntries([...restored].sort()), Object.fromEntries(TASKS.map((id) => [id, `state of ${id}`])));
  await c.started('big');
  const next = await c.client.triggerCheckpoint({ jobId: 'big', wait: true }, { deadlineMs: 60_000 });
  t.is(next.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', 'the job goes on after the restore');
});
