/**
 * Scenario 2, checkpoint latency against task count, beside its floor. A
 * real coordinator (`ckpt coordinator` in its own process) and SDK workers
 * (`src/sdk`) in up to four worker processes, whose N source tasks do
 * nothing but snapshot 16 bytes. Checkpoints are triggered one after the
 * other with TriggerCheckpoint(wait) and timed from trigger to commit
 * acknowledged on WatchCheckpoints (`lib/checkpoint-watch.ts`); the calls'
 * own round trips are reported beside.
 *
 * After each checkpoint, one floor round (`lib/checkpoint-floor.ts`) does
 * the same work on the bare systems: one NATS trigger reaching the worker
 * processes, one gRPC stream message per worker of the bytes that worker's
 * SDK sent to acknowledge that checkpoint, one etcd transaction of the
 * keys and values the coordinator committed for it. Latency is held to
 * 1.5 × the floor at p50 and 3 × at p99.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { createCoordinatorClient, type CoordinatorClient } from '../src/client/index.js';
import { sourcesJob, timedCheckpoint, waitRunning } from './lib/bench-job.js';
import { CheckpointFloor, type FloorRound } from './lib/checkpoint-floor.js';
import { CheckpointWatch } from './lib/checkpoint-watch.js';
import { CommitCapture, CommitReplay, type CapturedCommit } from './lib/commit-capture.js';
import { COORDINATOR_NODE_FLAGS, startCoordinatorChild } from './lib/coordinator-child.js';
import { median, significant, spread } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { SdkWorkerPool } from './lib/sdk-pool.js';
import type { AckedCheckpoint } from './lib/sdk-worker-child.js';
import { coresText } from './lib/system.js';

/** Task counts measured, with the checkpoints timed at each (after the warm-up), full and quick. */
const PLAN: ReadonlyArray<{ tasks: number; checkpoints: number; quick: number }> = [
  { tasks: 1, checkpoints: 200, quick: 20 },
  { tasks: 64, checkpoints: 200, quick: 20 },
  { tasks: 256, checkpoints: 150, quick: 15 },
  { tasks: 1024, checkpoints: 100, quick: 10 },
  { tasks: 4096, checkpoints: 40, quick: 5 },
];
/** Checkpoints (each with its floor round) before the timed ones, not counted. */
const WARMUP_CHECKPOINTS = 5;
/** Worker processes the tasks are spread over. */
const WORKER_PROCESSES = 4;
/** Latency p50 ÷ floor p50 at most. */
const P50_FACTOR = 1.5;
/** Latency p99 ÷ floor p99 at most. */
const P99_FACTOR = 3;
/** Where the workers' snapshots go: tmpfs when the machine has one, so that they cost memory, not a disk. */
const STATE_ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

/** Measures `checkpoint.latency.n<N>.p50|p99` and `checkpoint.floor.n<N>.p50|p99`. */
export const checkpointLatency: Scenario = async (ctx) => {
  // Equal lengths: the floor's keys are the coordinator's, byte for byte, under another prefix.
  const prefixes = { coordinator: `${ctx.prefix}-c`, floor: `${ctx.prefix}-f` };
  const coordinator = await startCoordinatorChild({ etcd: ctx.etcd, nats: ctx.nats, prefix: prefixes.coordinator });
  const etcd = CommitReplay.client(ctx.etcd);
  const pool = SdkWorkerPool.start(WORKER_PROCESSES);
  const client = createCoordinatorClient(coordinator.address);
  const closers: Array<() => Promise<void>> = [];
  try {
    const capture = await CommitCapture.start(etcd, `/${prefixes.coordinator}/`);
    closers.push(() => capture.close());
    const floor = await CheckpointFloor.start(ctx.nats, `${prefixes.floor}.trigger`);
    closers.push(() => floor.close());
    const setup: Setup = { ctx, client, pool, address: coordinator.address, etcd, capture, floor, prefixes };
    const rows: Row[] = [];
    for (const step of PLAN) {
      rows.push(...(await measure(setup, step.tasks, ctx.quick === true ? step.quick : step.checkpoints)));
    }
    return rows;
  } finally {
    for (const close of closers.reverse()) await close();
    client.close();
    await pool.stop();
    await coordinator.stop();
    etcd.close();
  }
};

interface Setup {
  ctx: ScenarioContext;
  client: CoordinatorClient;
  pool: SdkWorkerPool;
  address: string;
  etcd: Etcd3;
  capture: CommitCapture;
  floor: CheckpointFloor;
  prefixes: { coordinator: string; floor: string };
}

/** What one task count measured: ms per checkpoint or round, bytes per checkpoint. */
interface Samples {
  /** Trigger to commit acknowledged, from WatchCheckpoints. */
  latencyMs: number[];
  /** The TriggerCheckpoint(wait) call, from call to reply. */
  callMs: number[];
  floor: FloorRound[];
  /** How each worker acknowledged, per checkpoint. */
  acks: AckedCheckpoint[][];
  commits: CapturedCommit[];
}

/** Runs one job of `tasks` tasks: `checkpoints` checkpoints, each followed by its floor round. */
async function measure(setup: Setup, tasks: number, checkpoints: number): Promise<Row[]> {
  const { ctx, client, pool, floor } = setup;
  const jobId = `latency-n${tasks}`;
  const spec = sourcesJob(jobId, tasks);
  await client.submitJob({ spec });
  const watch = new CheckpointWatch(setup.address, jobId);
  const taskIds = (spec.tasks ?? []).map((t) => t.taskId ?? '');
  const target = { coordinator: setup.address, nats: ctx.nats, jobId, stateRoot: STATE_ROOT };
  try {
    await pool.start(target, taskIds, { nats: ctx.nats, subject: floor.subject, address: floor.address });
    await waitRunning(client, jobId, tasks);
    const replay = new CommitReplay(setup.etcd, `/${setup.prefixes.coordinator}/`, `/${setup.prefixes.floor}/`);
    const samples: Samples = { latencyMs: [], callMs: [], floor: [], acks: [], commits: [] };
    for (let i = 0; i < WARMUP_CHECKPOINTS + checkpoints; i++) {
      const { ms, summary } = await timedCheckpoint(client, jobId);
      const latencyMs = await watch.durationOf(summary.checkpointId);
      const commit = await setup.capture.commitOf(jobId, summary.checkpointId);
      const acks = await pool.prepare(summary.checkpointId);
      if (i === 0) await replay.prepare(commit);
      const trigger = {
        jobId,
        checkpointId: summary.checkpointId,
        epoch: summary.epoch,
        snapshotType: 'SNAPSHOT_TYPE_FULL',
        term: 1,
      } as const;
      const round = await floor.round(commit, pool.attached, replay, trigger);
      if (i < WARMUP_CHECKPOINTS) continue;
      samples.latencyMs.push(latencyMs);
      samples.callMs.push(ms);
      samples.floor.push(round);
      samples.acks.push(acks);
      samples.commits.push(commit);
    }
    const rows = latencyRows(ctx, tasks, pool.attached, samples);
    const [p50, p99] = rows;
    ctx.log(`N=${tasks}: p50 ${p50?.value} ms (${p50?.ratio} × floor), p99 ${p99?.value} ms (${p99?.ratio} × floor)`);
    return rows;
  } finally {
    watch.close();
    await pool.close();
    await client.cancelJob({ jobId });
  }
}

function latencyRows(ctx: ScenarioContext, tasks: number, workers: number, samples: Samples): Row[] {
  const latency = spread(samples.latencyMs);
  const call = spread(samples.callMs);
  const floor = spread(samples.floor.map((r) => r.ms));
  const texts = conditionTexts(ctx, tasks, workers, samples);
  const row = (id: string, ms: number, conditions: string, floorMs: number, factor?: number): Row => ({
    id: `checkpoint.${id}`,
    value: significant(ms),
    unit: 'ms',
    target: factor === undefined ? null : significant(factor * floorMs),
    ratio: significant(ms / floorMs, 3),
    met: factor === undefined ? null : ms <= factor * floorMs,
    conditions,
  });
  const targetText = (factor: number, which: string): string =>
    `target ${factor} × floor ${which} (checkpoint.floor.n${tasks}.${which}, measured in the same rounds)`;
  return [
    row(
      `latency.n${tasks}.p50`,
      latency.p50,
      `${targetText(P50_FACTOR, 'p50')}; ${texts.latency}`,
      floor.p50,
      P50_FACTOR,
    ),
    row(
      `latency.n${tasks}.p99`,
      latency.p99,
      `${targetText(P99_FACTOR, 'p99')}; ${texts.latency}`,
      floor.p99,
      P99_FACTOR,
    ),
    row(`trigger_call.n${tasks}.p50`, call.p50, texts.call, floor.p50),
    row(`trigger_call.n${tasks}.p99`, call.p99, texts.call, floor.p99),
    { ...row(`floor.n${tasks}.p50`, floor.p50, texts.floor, floor.p50), ratio: null },
    { ...row(`floor.n${tasks}.p99`, floor.p99, texts.floor, floor.p99), ratio: null },
  ];
}

/** The conditions of the rows, from what this run measured. */
function conditionTexts(
  ctx: ScenarioContext,
  tasks: number,
  workers: number,
  samples: Samples,
): { latency: string; call: string; floor: string } {
  const perWorker = `${Math.floor(tasks / workers)}${tasks % workers === 0 ? '' : `-${Math.ceil(tasks / workers)}`}`;
  const count = samples.latencyMs.length;
  const ackBytes = samples.acks.flat().map((a) => a.bytes);
  const messages = samples.acks.flat().map((a) => a.messages);
  const commit = samples.commits[samples.commits.length - 1];
  const putBytes = median(samples.commits.map((c) => c.putBytes));
  const setup =
    `${tasks} source tasks (no edges) in ${workers} SDK worker(s) (src/sdk createWorker, default options: ` +
    `acknowledgements batched per checkpoint in the session, ackBatchMs 5), one per process, ${perWorker} tasks ` +
    `each; every task takes an empty snapshot, which is not stored (no state: the floor pays for none); ` +
    `coordinator \`ckpt coordinator\` in its own process (node ${COORDINATOR_NODE_FLAGS.join(' ')}, log level info, to a file) on single-member ` +
    `${ctx.system.etcd} and ${ctx.system.nats}; ${count} sequential checkpoints, each triggered by ` +
    `TriggerCheckpoint(wait) once the one before was committed and followed by one floor round, after ` +
    `${WARMUP_CHECKPOINTS} warm-up pairs; Node.js ${process.version}, all on ${coresText(ctx.system)}`;
  const fanOut = spread(samples.floor.map((r) => r.fanOutMs));
  const txn = spread(samples.floor.map((r) => r.txnMs));
  const floor =
    `the floor of the same checkpoints, one round after each: from this process, one NATS publish of a Trigger ` +
    `(as ckpt encodes it) reaching the ${workers} worker process(es); each answers with one message on its own ` +
    `bare @grpc/grpc-js stream to a server in this process, carrying as many bytes as its SDK worker sent to ` +
    `acknowledge that checkpoint (median ${significant(median(ackBytes))} B, ${Math.min(...ackBytes)}-` +
    `${Math.max(...ackBytes)} B, which the SDK sent in ${Math.min(...messages)}-${Math.max(...messages)} session ` +
    `message(s), median ${median(messages)}; plus the 1-6 B of the bare message's fields); once all are in, one etcd ` +
    `transaction with the keys and values the coordinator committed for that checkpoint, read back through a ` +
    `watch (${commit?.puts.length ?? 0} puts of median ${significant(putBytes)} B of keys and values, delete of ` +
    `the ${commit?.deletes.length ?? 0} keys of the subsumed checkpoint by prefix, guarded by 3 compares as the ` +
    `store guards a commit); publish to etcd's answer; publish to last message p50 ${significant(fanOut.p50)} ms ` +
    `p99 ${significant(fanOut.p99)} ms, transaction p50 ${significant(txn.p50)} ms p99 ${significant(txn.p99)} ms; ` +
    `${count} rounds; ${setup}`;
  const workerMs = spread(samples.acks.map((acks) => Math.max(...acks.map((a) => a.workerMs))));
  const latency =
    `trigger to commit acknowledged by etcd: from the arrival of the checkpoint's PENDING event on ` +
    `WatchCheckpoints to its COMPLETED event (both sent by the coordinator, on one stream); of which in the ` +
    `slowest worker, from its first task's snapshot to its last acknowledgement accepted: p50 ` +
    `${significant(workerMs.p50)} ms, p99 ${significant(workerMs.p99)} ms; ${setup}`;
  const call = `the TriggerCheckpoint(wait) call, from call to reply, as its caller sees it; ratio to the floor; ${setup}`;
  return { latency, call, floor };
}
