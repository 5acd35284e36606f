/**
 * Scenario `orphans`, state cleanup under faults: a coordinator
 * (`ckpt coordinator`, its own process) with a short orphan grace period
 * and sweep interval, and a job of two worker processes, each a source and
 * a sink with keyed state (incremental, a full piece every few
 * checkpoints) in a JetStream Object Store bucket. While checkpoints run
 * periodically, one sink declines every k-th checkpoint, the other stalls
 * every m-th upload past the checkpoint timeout, and worker processes are
 * SIGKILLed part-way through an upload of a full piece, then started
 * again (`lib/orphans-run.ts`). Then the faults stop, a few checkpoints
 * complete, the workers stop, and after the grace period and two sweep
 * intervals it counts (`lib/orphans-store.ts`): the job's pieces in the
 * bucket that no retained checkpoint names (target 0), the pieces retained
 * checkpoints name that are missing or fail verification (target 0), and
 * the bytes of chunks in the bucket's stream that no object owns, left by
 * uploads killed before their metadata (target 0).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../src/bus/index.js';
import { createCoordinatorClient, createQueryClient } from '../src/client/index.js';
import { createObjectStoreBackend } from '../src/sdk/index.js';
import { waitRunning } from './lib/bench-job.js';
import { startCoordinatorChild } from './lib/coordinator-child.js';
import { OrphanWorkers, RunRecord, runWithFaults, watchOutcomes, type RunTargets } from './lib/orphans-run.js';
import { readRetained, strayChunks, unnamedPieces, verifyRetained, type StrayChunks } from './lib/orphans-store.js';
import type { OrphanWorkerStart, UploadFaults } from './lib/orphans-worker-child.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText } from './lib/system.js';
import { isMain, runStandalone } from './standalone.js';

const JOB_ID = 'orphans';
const ORPHAN_GRACE_MS = 2000;
const SWEEP_INTERVAL_MS = 1000;
/** Periodic checkpoints; a stalled upload outlasts the timeout but not the snapshot timeout (no recovery). */
const POLICY = {
  intervalMs: 300,
  timeoutMs: 1500,
  snapshotTimeoutMs: 20_000,
  retained: 2,
  tolerableFailures: -1,
  fullEvery: 4,
};
const FAULTS: UploadFaults = { declineEvery: 5, stallEvery: 7, stallMs: 2500 };
const WORKERS = 2;
/** Sink state: keys × padded values, about 1 MiB per sink, so a full piece is several 128 KiB chunks. */
const SINK = { keys: 4000, valueBytes: 256, recordsPerTick: 10, tickMs: 20 };
/** Checkpoints completed after the faults stop, before the workers stop. */
const CALM_CHECKPOINTS = 3;

const FULL_TARGETS: RunTargets = { completed: 40, aborted: 8, kills: 4, killUploadBytes: 512 * 1024 };
const QUICK_TARGETS: RunTargets = { completed: 12, aborted: 3, kills: 2, killUploadBytes: 512 * 1024 };

/** What the count at the end found. */
interface Count {
  listed: number;
  retainedCheckpoints: number[];
  retainedPieces: number;
  unnamed: string[];
  missing: Array<{ uri: string; error: string }>;
  stray: StrayChunks;
}

/** Measures `state.orphans.*` and `state.retained.missing`. */
export const orphans: Scenario = async (ctx) => {
  const targets = ctx.quick === true ? QUICK_TARGETS : FULL_TARGETS;
  const bucket = `${ctx.prefix}-state`;
  const coordinator = await startCoordinatorChild({
    etcd: ctx.etcd,
    nats: ctx.nats,
    prefix: ctx.prefix,
    flags: ['--orphan-grace-ms', String(ORPHAN_GRACE_MS), '--state-sweep-interval-ms', String(SWEEP_INTERVAL_MS)],
  });
  const client = createCoordinatorClient(coordinator.address);
  const query = createQueryClient(coordinator.address);
  const nc = await connectNats(ctx.nats, 'bench-orphans');
  const watching = new AbortController();
  const record = new RunRecord();
  const plans = workerPlans(ctx, coordinator.address, bucket);
  const workers = new OrphanWorkers(plans, record, nc, bucket);
  try {
    await client.submitJob({ spec: jobSpec(plans) });
    const watched = watchOutcomes(query, JOB_ID, record, watching.signal);
    await workers.startAll();
    await waitRunning(client, JOB_ID, 2 * WORKERS);
    ctx.log(`job running: ${WORKERS} worker processes, bucket ${bucket}`);
    const ids = plans.map((p) => p.workerId);
    await runWithFaults(client, JOB_ID, 2 * WORKERS, workers, ids, record, targets, (line) => ctx.log(line));
    await workers.calm();
    const calmFrom = record.completed;
    await record.until(() => record.completed >= calmFrom + CALM_CHECKPOINTS, Date.now() + 60_000, 'calm checkpoints');
    await workers.stop();
    const stoppedAt = Date.now();
    ctx.log(`faults off, workers stopped: ${record.summary()}`);
    await delay(ORPHAN_GRACE_MS + 2 * SWEEP_INTERVAL_MS);
    const waitedMs = Date.now() - stoppedAt;
    const count = await countState(nc, bucket, query);
    watching.abort();
    await watched;
    ctx.log(countLine(count, waitedMs));
    for (const line of explainUnnamed(count, record)) ctx.log(line);
    return rows(ctx, targets, record, count);
  } finally {
    watching.abort();
    await workers.stop().catch(() => undefined);
    client.close();
    query.close();
    await coordinator.stop();
    await destroyBucket(nc, bucket);
    await nc.close();
  }
};

function workerPlans(ctx: ScenarioContext, coordinator: string, bucket: string): OrphanWorkerStart[] {
  return Array.from({ length: WORKERS }, (_, i) => ({
    coordinator,
    nats: ctx.nats,
    jobId: JOB_ID,
    workerId: `orphans-worker-${i}`,
    bucket,
    sourceId: `src-${i}`,
    sinkId: `sink-${i}`,
    ...SINK,
    // The first sink declines, the second stalls.
    faults: i === 0 ? { ...FAULTS, stallEvery: 0 } : { ...FAULTS, declineEvery: 0 },
  }));
}

function jobSpec(plans: readonly OrphanWorkerStart[]): {
  jobId: string;
  tasks: Array<{ taskId: string; inputs?: string[] }>;
  policy: typeof POLICY;
} {
  return {
    jobId: JOB_ID,
    tasks: plans.flatMap((p) => [{ taskId: p.sourceId }, { taskId: p.sinkId, inputs: [p.sourceId] }]),
    policy: POLICY,
  };
}

async function countState(
  nc: NatsConnection,
  bucket: string,
  query: ReturnType<typeof createQueryClient>,
): Promise<Count> {
  const backend = await createObjectStoreBackend({ connection: nc, bucket });
  try {
    const retained = await readRetained(query, JOB_ID);
    const listed = (await backend.listPieces(JOB_ID)).length;
    return {
      listed,
      retainedCheckpoints: retained.checkpointIds,
      retainedPieces: retained.handles.size,
      unnamed: await unnamedPieces(backend, JOB_ID, retained),
      missing: await verifyRetained(backend, JOB_ID, retained),
      stray: await strayChunks(nc, bucket),
    };
  } finally {
    await backend.close();
  }
}

async function destroyBucket(nc: NatsConnection, bucket: string): Promise<void> {
  const store = await new Objm(nc).open(bucket).catch(() => undefined);
  await store?.destroy().catch(() => undefined);
}

function countLine(c: Count, waitedMs: number): string {
  return (
    `counted ${waitedMs} ms after the workers stopped: ${c.listed} pieces listed, ${c.retainedPieces} named by retained ` +
    `checkpoints ${c.retainedCheckpoints.join(', ')}; ${c.unnamed.length} unnamed, ${c.missing.length} missing; ` +
    `${c.stray.messages} stray chunks (${c.stray.bytes} B) of ${c.stray.uploads} uploads` +
    c.stray.subjects.map((s) => `; ${s.subject}: ${s.messages} chunks, ${s.bytes} B`).join('')
  );
}

/** For each piece left that no retained checkpoint names: its checkpoint, its outcome, and the faults it met. */
function explainUnnamed(c: Count, record: RunRecord): string[] {
  return c.unnamed.map((uri) => {
    const ups = record.uploads.filter((u) => u.uri === uri);
    const first = ups[0];
    const id = Number(/\/(\d+)-\d+$/.exec(uri)?.[1] ?? NaN);
    const outcome = record.outcomes.get(id);
    const killed = record.kills.some((k) => k.upload.checkpointId === id && k.upload.taskId === first?.taskId);
    return (
      `left: ${uri}: checkpoint ${id} ${outcome === undefined ? 'with no outcome seen' : `${outcome.state} ${outcome.reason}`}` +
      `${first?.fault === undefined ? '' : `, upload ${first.fault}`}${killed ? ', its worker killed during it' : ''}` +
      `${ups.length === 0 ? ', never reported stored' : ''}`
    );
  });
}

function rows(ctx: ScenarioContext, targets: RunTargets, record: RunRecord, c: Count): Row[] {
  const stored = new Set(record.uploads.filter((u) => u.phase === 'stored').map((u) => u.uri ?? ''));
  const listedAtEnd = new Set([...c.unnamed]);
  const neverCommitted = [...stored].filter((uri) => {
    const id = Number(/\/(\d+)-\d+$/.exec(uri)?.[1] ?? NaN);
    return record.outcomes.get(id)?.state !== 'completed';
  });
  const swept = neverCommitted.filter((uri) => !listedAtEnd.has(uri)).length;
  const reasons = new Map<string, number>();
  for (const o of record.outcomes.values())
    if (o.state === 'aborted') reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
  const unfinished = record.kills.filter((k) => k.unfinished).length;
  const setup =
    `one job of ${WORKERS} worker processes (SDK workers, forked, Node ${process.version}), each a ticking source ` +
    `and a counting sink with keyed state (${SINK.keys} keys of ${SINK.valueBytes} B per sink), snapshots in a ` +
    `JetStream Object Store bucket (file storage, 1 replica) on the run's ${ctx.system.nats}; policy: a checkpoint ` +
    `every ${POLICY.intervalMs} ms, timeout ${POLICY.timeoutMs} ms, ${POLICY.retained} retained, a full piece every ` +
    `${POLICY.fullEvery}, failures tolerated; coordinator \`ckpt coordinator\` in its own process with ` +
    `--orphan-grace-ms ${ORPHAN_GRACE_MS} --state-sweep-interval-ms ${SWEEP_INTERVAL_MS}, on the run's ` +
    `${ctx.system.etcd}; faults: sink-0's upload fails (a decline) on every ${FAULTS.declineEvery}th checkpoint, ` +
    `sink-1's upload stalls ${FAULTS.stallMs} ms after storing on every ${FAULTS.stallEvery}th, ` +
    `${record.kills.length} SIGKILLs of a worker process once an upload of its of at least ${targets.killUploadBytes} B ` +
    `had published 2 chunks (${unfinished} of them before the upload reported its end), each process started again; ${record.completed} checkpoints completed, ${record.aborted} aborted (${[...reasons].map(([r, n]) => `${n} ${r}`).join(', ')}); ` +
    `then faults off, ${CALM_CHECKPOINTS} more checkpoints completed, workers stopped gracefully, and the count ` +
    `after ${ORPHAN_GRACE_MS} + 2 × ${SWEEP_INTERVAL_MS} ms; ${coresText(ctx.system)}`;
  const row = (id: string, value: number, unit: string, what: string, target: number | null = null): Row => ({
    id,
    value,
    unit,
    target,
    ratio: null,
    met: target === null ? null : value <= target,
    conditions: `${what}; ${setup}`,
  });
  return [
    row(
      'state.orphans.left',
      c.unnamed.length,
      'pieces',
      `the job's pieces listed in the bucket that no retained checkpoint (${c.retainedCheckpoints.join(', ')}) names, ` +
        `read through the query API${c.unnamed.length > 0 ? `: ${c.unnamed.join(', ')}` : ''}; target 0`,
      0,
    ),
    row(
      'state.retained.missing',
      c.missing.length,
      'pieces',
      `of the ${c.retainedPieces} pieces the retained manifests name (shared ones included), those missing or ` +
        `failing verification (size and sha256) when read back through the object store backend` +
        `${c.missing.length > 0 ? `: ${c.missing.map((m) => `${m.uri} (${m.error})`).join('; ')}` : ''}; target 0`,
      0,
    ),
    row('state.orphans.uploaded', stored.size, 'pieces', 'pieces the workers reported stored over the run'),
    row(
      'state.orphans.swept',
      swept,
      'pieces',
      `pieces stored for checkpoints that never completed (${neverCommitted.length}) and gone at the end`,
    ),
    row(
      'state.orphans.stray_bytes',
      c.stray.bytes,
      'bytes',
      `bytes of chunk messages in the bucket's stream that no object owns (${c.stray.messages} chunks of ` +
        `${c.stray.uploads} uploads): uploads that died before their metadata was written, which no listing of ` +
        `objects shows and so no sweep takes; target 0`,
      0,
    ),
    row('state.orphans.checkpoints.completed', record.completed, 'checkpoints', 'checkpoints completed in the run'),
    row('state.orphans.checkpoints.aborted', record.aborted, 'checkpoints', 'checkpoints aborted in the run'),
    row('state.orphans.kills', record.kills.length, 'kills', 'worker processes SIGKILLed during an upload'),
  ];
}

if (isMain(import.meta.url)) await runStandalone('orphans', orphans);
