/**
 * The `state` benchmark's measuring process, forked with a heap limit of
 * its own and `--expose-gc`: it builds the keyed state, checkpoints it
 * (fulls, then deltas) into one backend, then restores the newest
 * checkpoint several times, interleaved with the plain read of the same
 * pieces, and checks every restored state against the checkpointed one.
 *
 * Requests: `run` with a `StateRunPlan`; resolves with a `StateRunResult`,
 * rejects when a restored state differs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import { createLocalDirectoryBackend } from '../../src/sdk/state/local-directory-backend.js';
import { createObjectStoreBackend } from '../../src/sdk/state/object-store-backend.js';
import type { StateBackend } from '../../src/sdk/state/state-backend.js';
import { serveParent, type ChildRequest } from './bench-child.js';
import { chainOf, checkpoint, restore, taskTracker, type CheckpointFigures, type StateTask } from './state-chain.js';
import { buildState, changeKeys, digestState, keyCount, Prng, type StateDigest } from './state-data.js';
import { readFilesPlainly, readObjectsPlainly, type PlainRead } from './state-floor.js';

/** Which backend, and how much to measure. */
export interface StateRunPlan {
  backend: 'dir' | 'nats-obj';
  /** Logical size of the state. */
  stateBytes: number;
  /** Share of the keys set to new values between two checkpoints. */
  changeShare: number;
  /** Full checkpoints taken first; the last one is the chain's base. */
  fulls: number;
  /** Delta checkpoints taken after the fulls. */
  deltas: number;
  /** Timed restores (and as many plain reads), after one of each untimed. */
  restores: number;
  seed: number;
  /** The parent directory of the directory backend's store (a new directory in it, removed after). */
  dir: string;
  /** NATS servers and the bucket, for the object store. */
  nats: string[];
  bucket: string;
}

/** One checkpoint's figures, without its handle. */
export type CheckpointRow = Omit<CheckpointFigures, 'handle'>;

/** What a run measured. */
export interface StateRunResult {
  keys: number;
  changedKeys: number;
  buildMs: number;
  checkpoints: CheckpointRow[];
  /** Pieces of the restored checkpoint's chain and their bytes. */
  chainPieces: number;
  chainBytes: number;
  floorMs: number[];
  restoreMs: number[];
  /** After each timed restore, the first read of every value (iteration), in ms. */
  readAllMs: number[];
  /** The digest every restored state matched. */
  digest: StateDigest;
}

/** Collects garbage, so that one timed run does not pay for the last one's. */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The backend under test, its plain reader, and how to let go of both. */
interface Store {
  backend: StateBackend;
  plainRead: PlainRead;
  close(): Promise<void>;
}

async function openStore(plan: StateRunPlan): Promise<Store> {
  if (plan.backend === 'dir') {
    const dir = await mkdtemp(join(plan.dir, 'ckpt-bench-state-'));
    const backend = await createLocalDirectoryBackend({ dir, fsync: true });
    const close = async (): Promise<void> => {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    };
    return { backend, plainRead: readFilesPlainly, close };
  }
  const nc: NatsConnection = await connectNats(plan.nats, 'bench-state');
  const backend = await createObjectStoreBackend({ connection: nc, bucket: plan.bucket });
  const plain = await new Objm(nc).open(plan.bucket);
  const close = async (): Promise<void> => {
    await backend.close();
    await plain.destroy();
    await nc.close();
  };
  return { backend, plainRead: readObjectsPlainly(plain), close };
}

/** Takes the fulls and the deltas; resolves with their figures and the newest handle. */
async function takeCheckpoints(
  task: StateTask,
  plan: StateRunPlan,
  keys: number,
  changedKeys: number,
  prng: Prng,
): Promise<{ figures: CheckpointFigures[]; digest: StateDigest; buildMs: number }> {
  const began = performance.now();
  const state = buildState(keys, prng);
  const buildMs = performance.now() - began;
  const tracker = taskTracker(task);
  const figures: CheckpointFigures[] = [];
  for (let id = 1; id <= plan.fulls + plan.deltas; id++) {
    if (id > 1) changeKeys(state, keys, changedKeys, prng);
    collectGarbage();
    const taken = await checkpoint(task, tracker, state, id, id <= plan.fulls);
    if (taken.kind !== (id <= plan.fulls ? 'full' : 'delta'))
      throw new Error(`checkpoint ${id} stored a ${taken.kind}`);
    figures.push(taken);
  }
  return { figures, digest: digestState(state), buildMs };
}

/** Restores `handle` `plan.restores` times after one untimed round, alternating with the plain read. */
async function timeRestores(
  task: StateTask,
  store: Store,
  plan: StateRunPlan,
  newest: CheckpointFigures,
  expected: StateDigest,
): Promise<{ floorMs: number[]; restoreMs: number[]; readAllMs: number[] }> {
  const { pieces, bytes } = chainOf(newest.handle);
  const floorMs: number[] = [];
  const restoreMs: number[] = [];
  const readAllMs: number[] = [];
  for (let round = 0; round <= plan.restores; round++) {
    collectGarbage();
    let began = performance.now();
    const read = await store.plainRead(pieces);
    const plainMs = performance.now() - began;
    if (read !== bytes) throw new Error(`the plain read got ${read} bytes of ${bytes}`);
    collectGarbage();
    began = performance.now();
    const restored = await restore(task, newest.checkpointId, newest.handle);
    const ms = performance.now() - began;
    // The first read of every value, which decodes those the restore left in their piece.
    began = performance.now();
    let chars = 0;
    for (const [, value] of restored) chars += typeof value === 'string' ? value.length : 1;
    const readMs = performance.now() - began;
    if (chars === 0) throw new Error('the restored state reads empty');
    checkRestored(digestState(restored), expected, newest.checkpointId, round);
    if (round === 0) continue;
    floorMs.push(plainMs);
    restoreMs.push(ms);
    readAllMs.push(readMs);
  }
  return { floorMs, restoreMs, readAllMs };
}

function checkRestored(actual: StateDigest, expected: StateDigest, checkpointId: number, round: number): void {
  if (actual.count === expected.count && actual.sha256 === expected.sha256) return;
  throw new Error(
    `restore ${round} of checkpoint ${checkpointId} differs from its state: ` +
      `${actual.count} entries, sha256 ${actual.sha256}; expected ${expected.count}, ${expected.sha256}`,
  );
}

async function run(plan: StateRunPlan): Promise<StateRunResult> {
  const store = await openStore(plan);
  try {
    const task: StateTask = { backend: store.backend, jobId: 'bench-state', taskId: 'keyed-0' };
    const keys = keyCount(plan.stateBytes);
    const changedKeys = Math.max(1, Math.round(keys * plan.changeShare));
    const taken = await takeCheckpoints(task, plan, keys, changedKeys, new Prng(plan.seed));
    const newest = taken.figures.at(-1) as CheckpointFigures;
    const chain = chainOf(newest.handle);
    if (chain.pieces.length !== plan.deltas + 1) {
      throw new Error(
        `the newest checkpoint names ${chain.pieces.length} pieces, not a full and ${plan.deltas} deltas`,
      );
    }
    const times = await timeRestores(task, store, plan, newest, taken.digest);
    return {
      keys,
      changedKeys,
      buildMs: taken.buildMs,
      checkpoints: taken.figures.map(({ handle: _handle, ...figures }) => figures),
      chainPieces: chain.pieces.length,
      chainBytes: chain.bytes,
      ...times,
      digest: taken.digest,
    };
  } finally {
    await store.close();
  }
}

serveParent({ run: (request: ChildRequest) => run(request.plan as StateRunPlan) });
