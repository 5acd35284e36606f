/**
 * Which restored pieces the SDK reads as holding in-flight records: those
 * whose handle says so, and, among pieces stored before handles said so,
 * only those certainly stored by a task with inputs of an UNALIGNED job.
 * Pieces are stored in a real local directory backend.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { restoredState, uploadSnapshot, type RestoreOptions } from '../../src/sdk/snapshot-upload.js';
import { createLocalDirectoryBackend, type StateBackend } from '../../src/sdk/state/index.js';
import { encodeStatePiece } from '../../src/sdk/state/state-piece.js';
import { allKeyGroups, KEY_GROUPS } from '../../src/core/key-groups.js';
import { encodeUnalignedSnapshot } from '../../src/sdk/unaligned-snapshot.js';

const text = new TextEncoder();
const IN_FLIGHT = [{ from: 'src', key: 'k', value: text.encode('in flight') }];

async function backendFor(t: ExecutionContext): Promise<StateBackend> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-restored-state-'));
  const backend = await createLocalDirectoryBackend({ dir, fsync: false });
  t.teardown(async () => {
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  return backend;
}

/** Stores `bytes` as the piece of `jobId`/`taskId` at `checkpointId`; `inFlight`: its handle says so. */
async function store(
  backend: StateBackend,
  piece: { jobId: string; taskId?: string; checkpointId: number; bytes: Uint8Array; inFlight: boolean },
): Promise<StateHandle__Output> {
  const snapshot = await uploadSnapshot(backend, {
    jobId: piece.jobId,
    taskId: piece.taskId ?? 'm',
    checkpointId: piece.checkpointId,
    epoch: 1,
    bytes: piece.bytes,
    shared: [],
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    codec: 'none',
    positions: [],
    metrics: { alignmentMs: 0, syncMs: 0, processedRecords: 0 },
    inFlight: piece.inFlight,
    signal: new AbortController().signal,
  });
  const handle = snapshot.state;
  if (handle?.inFlightRecords !== piece.inFlight) throw new Error(`the handle of ${piece.checkpointId} is wrong`);
  return handle;
}

async function restore(
  backend: StateBackend,
  handle: StateHandle__Output,
  options: Partial<RestoreOptions>,
): Promise<{ state: string; inFlight: string[] }> {
  const all: RestoreOptions = { jobId: 'job', unaligned: true, chain: false, ...options };
  const { pieces, inFlight } = await restoredState(backend, handle, new AbortController().signal, all);
  return {
    state: new TextDecoder().decode(pieces.at(-1) ?? new Uint8Array()),
    inFlight: inFlight.map((r) => new TextDecoder().decode(r.value)),
  };
}

test('a piece whose handle says so holds in-flight records, in a job of any mode', async (t) => {
  const backend = await backendFor(t);
  const bytes = encodeUnalignedSnapshot(text.encode('state'), IN_FLIGHT);
  const handle = await store(backend, { jobId: 'job', checkpointId: 3, bytes, inFlight: true });
  for (const unaligned of [false, true]) {
    t.deepEqual(await restore(backend, handle, { unaligned }), { state: 'state', inFlight: ['in flight'] });
  }
});

test("an unmarked piece of a task's own snapshot holds in-flight records only in a checkpoint of its UNALIGNED job itself", async (t) => {
  const backend = await backendFor(t);
  // Stored by an UNALIGNED job before handles said so.
  const old = encodeUnalignedSnapshot(text.encode('state'), IN_FLIGHT);
  const own = await store(backend, { jobId: 'job', checkpointId: 3, bytes: old, inFlight: false });
  t.deepEqual(await restore(backend, own, {}), { state: 'state', inFlight: ['in flight'] });
  t.deepEqual(await restore(backend, own, { sourceJobId: '' }), { state: 'state', inFlight: ['in flight'] });

  // A savepoint of an ALIGNED job: plain bytes, whatever they look like.
  const plain = await store(backend, {
    jobId: 'aligned',
    checkpointId: 4,
    bytes: text.encode('plain'),
    inFlight: false,
  });
  t.deepEqual(await restore(backend, plain, { sourceJobId: 'aligned' }), { state: 'plain', inFlight: [] });
  const lookalike = await store(backend, { jobId: 'aligned', checkpointId: 5, bytes: old, inFlight: false });
  const read = await restore(backend, lookalike, { sourceJobId: 'aligned' });
  t.deepEqual(read.inFlight, [], "a savepoint's unmarked piece is the task's own bytes");
  t.is(read.state.length, old.length);

  // The same job id started again from a savepoint of its earlier run, which may have had another mode.
  t.deepEqual(await restore(backend, own, { sourceJobId: 'job' }), {
    state: new TextDecoder().decode(old),
    inFlight: [],
  });

  // Not an UNALIGNED job (or a source): unmarked pieces are plain.
  t.deepEqual((await restore(backend, own, { unaligned: false })).inFlight, []);
});

test('an unmarked piece of keyed state holds in-flight records when it starts with their header', async (t) => {
  const backend = await backendFor(t);
  const keyed = encodeStatePiece({ kind: 'full', keyGroups: KEY_GROUPS, range: allKeyGroups() }, []);
  const plain = await store(backend, { jobId: 'aligned', checkpointId: 4, bytes: keyed, inFlight: false });
  const fromSavepoint = { chain: true, sourceJobId: 'aligned' };
  const read = await restoredState(backend, plain, new AbortController().signal, {
    jobId: 'job',
    unaligned: true,
    ...fromSavepoint,
  });
  t.deepEqual(read.pieces, [new Uint8Array(keyed)], "an ALIGNED job's savepoint restores as it was stored");
  t.deepEqual(read.inFlight, []);

  // An UNALIGNED job's savepoint stored before handles said so.
  const old = encodeUnalignedSnapshot(keyed, IN_FLIGHT);
  const enveloped = await store(backend, { jobId: 'unaligned', checkpointId: 5, bytes: old, inFlight: false });
  const options = { jobId: 'job', unaligned: true, chain: true, sourceJobId: 'unaligned' };
  const again = await restoredState(backend, enveloped, new AbortController().signal, options);
  t.deepEqual(again.pieces, [new Uint8Array(keyed)]);
  t.deepEqual(
    again.inFlight.map((r) => r.from),
    ['src'],
  );
});
