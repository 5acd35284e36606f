/**
 * Scenario `orphans`, state cleanup under faults: a coordinator
 * (`ckpt coordinator`, its own process) with a short orphan grace period
 * and sweep interval, and a job of two worker processes, each a source and
 * a sink with keyed state (incremental, a full piece every few
 * checkpoints), once in a JetStream Object Store bucket and once in a
 * local directory per worker. While checkpoints run periodically, one sink
 * declines every k-th checkpoint, the other stalls every m-th upload past
 * the checkpoint timeout, and worker processes are SIGKILLed part-way
 * through an upload of a full piece, then started again
 * (`lib/orphans-run.ts`). Then the faults stop; once a checkpoint has
 * completed without them, and the grace period and two sweep intervals
 * have passed with the workers still running (file pieces are swept by
 * them), the workers stop and it counts (`lib/orphans-store.ts`): the
 * job's pieces of the checkpoints before that one that no retained
 * checkpoint names (target 0), the pieces retained checkpoints name that
 * are missing or fail verification (target 0), and what killed uploads
 * left that no listing shows (target 0). Rows: `lib/orphans-rows.ts`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../src/bus/index.js';
import {
  createCoordinatorClient,
  createQueryClient,
  type CoordinatorClient,
  type QueryClient,
} from '../src/client/index.js';
import { waitRunning } from './lib/bench-job.js';
import { startCoordinatorChild } from './lib/coordinator-child.js';
import { checkpointOf, orphanRows, type BackendKind, type Count } from './lib/orphans-rows.js';
import {
  OrphanWorkers,
  RunRecord,
  runWithFaults,
  watchOutcomes,
  type KillTiming,
  type RunTargets,
} from './lib/orphans-run.js';
import {
  directoryView,
  objectStoreView,
  readRetained,
  unnamedPieces,
  verifyRetained,
  type StoreView,
} from './lib/orphans-store.js';
import { CLEANUP, FAULTS, POLICY, SINK, WORKERS } from './lib/orphans-setup.js';
import type { OrphanStore, OrphanWorkerStart } from './lib/orphans-worker-child.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { isMain, runStandalone } from './standalone.js';

const FULL_TARGETS: RunTargets = { completed: 40, aborted: 8, kills: 4, killUploadBytes: 512 * 1024 };
const QUICK_TARGETS: RunTargets = { completed: 12, aborted: 3, kills: 2, killUploadBytes: 512 * 1024 };
/** Longest the first checkpoint without faults may take to complete. */
const CALM_TIMEOUT_MS = 60_000;

/** What one backend's run is given. */
interface BackendContext {
  ctx: ScenarioContext;
  kind: BackendKind;
  targets: RunTargets;
  coordinator: string;
  client: CoordinatorClient;
  query: QueryClient;
  nc: NatsConnection;
}

/** Measures `state.orphans.*` and `state.retained.missing` (object store), `state.orphans.dir.*` and `state.retained.dir.missing`. */
export const orphans: Scenario = async (ctx) => {
  const coordinator = await startCoordinatorChild({
    etcd: ctx.etcd,
    nats: ctx.nats,
    prefix: ctx.prefix,
    flags: [
      ...['--orphan-grace-ms', String(CLEANUP.orphanGraceMs)],
      ...['--state-sweep-interval-ms', String(CLEANUP.stateSweepIntervalMs)],
    ],
  });
  const client = createCoordinatorClient(coordinator.address);
  const query = createQueryClient(coordinator.address);
  const nc = await connectNats(ctx.nats, 'bench-orphans');
  const targets = ctx.quick === true ? QUICK_TARGETS : FULL_TARGETS;
  const base = { ctx, targets, coordinator: coordinator.address, client, query, nc };
  try {
    const rows: Row[] = [];
    for (const kind of ['nats-obj', 'dir'] as const) rows.push(...(await runBackend({ ...base, kind })));
    return rows;
  } finally {
    client.close();
    query.close();
    await coordinator.stop();
    await nc.close();
  }
};

/** One job on one kind of store: the faulty run, then the count. */
async function runBackend(b: BackendContext): Promise<Row[]> {
  const { ctx, kind, client, query } = b;
  const jobId = kind === 'dir' ? 'orphans-dir' : 'orphans-obj';
  const storage = await openStorage(b);
  const plans = workerPlans(b, jobId, storage.stores);
  const record = new RunRecord();
  const workers = new OrphanWorkers(plans, record, killTiming(b, plans));
  const watching = new AbortController();
  const log = (line: string): void => ctx.log(`${kind}: ${line}`);
  try {
    await client.submitJob({ spec: jobSpec(jobId, plans) });
    const watched = watchOutcomes(query, jobId, record, watching.signal);
    await workers.startAll();
    await waitRunning(client, jobId, 2 * WORKERS);
    log(`job ${jobId} running: ${WORKERS} worker processes, ${storage.view.text}`);
    const ids = plans.map((p) => p.workerId);
    await runWithFaults(client, jobId, 2 * WORKERS, workers, ids, record, b.targets, log);
    const boundary = await calmCheckpoint(workers, record);
    log(`faults off; checkpoint ${boundary} completed without them: ${record.summary()}`);
    await delay(CLEANUP.orphanGraceMs + 2 * CLEANUP.stateSweepIntervalMs);
    // Stopped, the job commits nothing more: retention cannot move under the count.
    await workers.stop();
    const count = await countPieces(query, storage.view, jobId, boundary);
    watching.abort();
    await watched;
    for (const line of countLines(count)) log(line);
    return orphanRows(ctx, kind, b.targets, record, count);
  } finally {
    watching.abort();
    await workers.stop().catch(() => undefined);
    await storage.close();
  }
}

function killTiming(b: BackendContext, plans: readonly OrphanWorkerStart[]): KillTiming {
  const first = plans[0]?.store;
  if (first?.kind === 'nats-obj') return { kind: 'chunks', nc: b.nc, bucket: first.bucket };
  const dirs = new Map(plans.map((p) => [p.workerId, p.store.kind === 'dir' ? p.store.dir : '']));
  return { kind: 'files', dirOf: (workerId) => dirs.get(workerId) ?? '' };
}

/** Turns the faults off; resolves with the id of the first checkpoint completed after every faulty one. */
async function calmCheckpoint(workers: OrphanWorkers, record: RunRecord): Promise<number> {
  await workers.calm();
  const lastFaulty = Math.max(0, ...record.outcomes.keys(), ...record.uploads.map((u) => u.checkpointId));
  const calm = (): number | undefined =>
    [...record.outcomes].find(([id, o]) => id > lastFaulty && o.state === 'completed')?.[0];
  await record.until(() => calm() !== undefined, Date.now() + CALM_TIMEOUT_MS, 'a checkpoint without faults');
  return calm() ?? 0;
}

/** Counts the job's pieces against its retained checkpoints; pieces of `boundary` and later may be under way. */
async function countPieces(query: QueryClient, view: StoreView, jobId: string, boundary: number): Promise<Count> {
  const retained = await readRetained(query, jobId);
  const unnamed = await unnamedPieces(view, jobId, retained);
  const before = (uri: string): boolean => checkpointOf(uri) < boundary;
  return {
    boundary,
    listed: (await view.list(jobId)).length,
    retainedCheckpoints: retained.checkpointIds,
    retainedPieces: retained.handles.size,
    unnamed: unnamed.filter(before),
    underWay: unnamed.filter((uri) => !before(uri)),
    missing: await verifyRetained(view, jobId, retained),
    stray: await view.stray(),
  };
}

function countLines(c: Count): string[] {
  return [
    `${c.listed} pieces listed, ${c.retainedPieces} named by retained checkpoints ${c.retainedCheckpoints.join(', ')}, ` +
      `${c.underWay.length} unnamed of checkpoints from ${c.boundary} on; ${c.unnamed.length} unnamed before it, ` +
      `${c.missing.length} retained missing; ${c.stray.bytes} B left by ` +
      `${c.stray.uploads} uploads that no listing shows`,
    ...c.stray.details.map((d) => `stray: ${d}`),
    ...c.missing.map((m) => `missing: ${m.uri}: ${m.error}`),
  ];
}

/** The storage of one backend's run: a bucket, or a directory per worker. */
interface Storage {
  stores: OrphanStore[];
  view: StoreView;
  close(): Promise<void>;
}

async function openStorage(b: BackendContext): Promise<Storage> {
  if (b.kind === 'nats-obj') {
    const bucket = `${b.ctx.prefix}-state`;
    const stores: OrphanStore[] = Array.from({ length: WORKERS }, () => ({ kind: 'nats-obj', bucket }));
    // The workers create the bucket; the view opens it, so it is created here first.
    const view = await objectStoreView(b.nc, bucket);
    const close = async (): Promise<void> => {
      await view.close();
      const store = await new Objm(b.nc).open(bucket).catch(() => undefined);
      await store?.destroy().catch(() => undefined);
    };
    return { stores, view, close };
  }
  const root = await mkdtemp(join(tmpdir(), 'ckpt-bench-orphans-'));
  const dirs = await Promise.all(Array.from({ length: WORKERS }, (_, i) => mkdtemp(join(root, `worker-${i}-`))));
  const view = await directoryView(dirs);
  const close = async (): Promise<void> => {
    await view.close();
    await rm(root, { recursive: true, force: true });
  };
  return { stores: dirs.map((dir) => ({ kind: 'dir', dir })), view, close };
}

function workerPlans(b: BackendContext, jobId: string, stores: readonly OrphanStore[]): OrphanWorkerStart[] {
  return stores.map((store, i) => ({
    coordinator: b.coordinator,
    nats: b.ctx.nats,
    jobId,
    workerId: `orphans-worker-${i}`,
    store,
    sourceId: `src-${i}`,
    sinkId: `sink-${i}`,
    ...SINK,
    // The first sink declines, the second stalls.
    faults: i === 0 ? { ...FAULTS, stallEvery: 0 } : { ...FAULTS, declineEvery: 0 },
  }));
}

function jobSpec(
  jobId: string,
  plans: readonly OrphanWorkerStart[],
): { jobId: string; tasks: Array<{ taskId: string; inputs?: string[] }>; policy: typeof POLICY } {
  return {
    jobId,
    tasks: plans.flatMap((p) => [{ taskId: p.sourceId }, { taskId: p.sinkId, inputs: [p.sourceId] }]),
    policy: POLICY,
  };
}

if (isMain(import.meta.url)) await runStandalone('orphans', orphans);
