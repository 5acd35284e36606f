/**
 * Scenario 2, checkpoint latency against task count: a real coordinator
 * (`ckpt coordinator` in its own process) and simulated workers in four
 * worker processes, no-op state, jobs of N source tasks. Checkpoints are
 * triggered one after the other with TriggerCheckpoint(wait) and timed
 * from trigger to commit acknowledged on WatchCheckpoints
 * (`lib/checkpoint-watch.ts`); the calls' own round trips are reported
 * beside. Held to 1.5 × Floor(N) up to 1024 tasks and 2 × at 4096.
 */
import { createCoordinatorClient, type CoordinatorClient } from '../src/client/index.js';
import { sourcesJob, timedCheckpoint, waitRunning } from './lib/bench-job.js';
import { CheckpointWatch } from './lib/checkpoint-watch.js';
import { startCoordinatorChild } from './lib/coordinator-child.js';
import { floorModel, targetFactor, type FloorModel } from './lib/floor-model.js';
import { significant, spread } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText } from './lib/system.js';
import { WorkerPool } from './lib/worker-pool.js';

/** Task counts measured, with the checkpoints timed at each (after the warm-up), full and quick. */
const PLAN: ReadonlyArray<{ tasks: number; checkpoints: number; quick: number }> = [
  { tasks: 1, checkpoints: 200, quick: 20 },
  { tasks: 64, checkpoints: 200, quick: 20 },
  { tasks: 256, checkpoints: 150, quick: 15 },
  { tasks: 1024, checkpoints: 100, quick: 10 },
  { tasks: 4096, checkpoints: 40, quick: 5 },
];
/** Checkpoints before the timed ones, not counted. */
const WARMUP_CHECKPOINTS = 5;
/** Worker processes the tasks are spread over. */
const WORKER_PROCESSES = 4;

/** Measures `checkpoint.latency.n<N>.p50|p99` and `checkpoint.floor.n<N>`. */
export const checkpointLatency: Scenario = async (ctx) => {
  const floor = floorModel(ctx.earlier);
  const coordinator = await startCoordinatorChild({ etcd: ctx.etcd, nats: ctx.nats, prefix: ctx.prefix });
  const pool = WorkerPool.start(WORKER_PROCESSES);
  const client = createCoordinatorClient(coordinator.address);
  try {
    const rows: Row[] = [];
    for (const step of PLAN) {
      const checkpoints = ctx.quick === true ? step.quick : step.checkpoints;
      rows.push(
        ...(await measure({ ctx, client, pool, floor, address: coordinator.address }, step.tasks, checkpoints)),
      );
    }
    return rows;
  } finally {
    client.close();
    await pool.stop();
    await coordinator.stop();
  }
};

interface Setup {
  ctx: ScenarioContext;
  client: CoordinatorClient;
  pool: WorkerPool;
  floor: FloorModel;
  address: string;
}

/** Runs one job of `tasks` tasks and times `checkpoints` checkpoints of it. */
async function measure(setup: Setup, tasks: number, checkpoints: number): Promise<Row[]> {
  const { ctx, client, pool } = setup;
  const jobId = `latency-n${tasks}`;
  const spec = sourcesJob(jobId, tasks);
  await client.submitJob({ spec });
  const watch = new CheckpointWatch(setup.address, jobId);
  await pool.attach({ coordinator: setup.address, nats: ctx.nats, subjectPrefix: ctx.prefix }, spec, 'ack');
  try {
    await waitRunning(client, jobId, tasks);
    for (let i = 0; i < WARMUP_CHECKPOINTS; i++) await timedCheckpoint(client, jobId);
    const timings: Timings = { latencyMs: [], callMs: [] };
    for (let i = 0; i < checkpoints; i++) {
      const { ms, summary } = await timedCheckpoint(client, jobId);
      timings.callMs.push(ms);
      timings.latencyMs.push(await watch.durationOf(summary.checkpointId));
    }
    const rows = latencyRows(setup, tasks, timings);
    ctx.log(`N=${tasks}: p50 ${rows[0]?.value} ms (${rows[0]?.ratio} × Floor), p99 ${rows[1]?.value} ms`);
    return rows;
  } finally {
    watch.close();
    await pool.detach();
    await client.cancelJob({ jobId });
  }
}

/** What one task count measured, in ms per checkpoint. */
interface Timings {
  /** Trigger to commit acknowledged, from WatchCheckpoints. */
  latencyMs: number[];
  /** The TriggerCheckpoint(wait) call, from call to reply. */
  callMs: number[];
}

function latencyRows(setup: Setup, tasks: number, timings: Timings): Row[] {
  const { floor } = setup;
  const latency = spread(timings.latencyMs);
  const call = spread(timings.callMs);
  const floorMs = floor.floorMs(tasks);
  const factor = targetFactor(tasks);
  const workers = Math.min(setup.pool.size, tasks);
  const setupText =
    `${tasks} source tasks (no edges), ${workers} simulated worker(s) in ${workers} process(es), each ` +
    `acknowledging its tasks in one AcknowledgeCheckpoint call per checkpoint, no-op state; coordinator ` +
    `\`ckpt coordinator\` in its own process (log level info, to a file); ${latency.count} sequential ` +
    `checkpoints, each triggered by TriggerCheckpoint(wait) once the one before was committed, after ` +
    `${WARMUP_CHECKPOINTS} warm-up; ${floor.formula} = ${significant(floorMs)} ms; all on ${coresText(setup.ctx.system)}`;
  const latencyText =
    `trigger to commit acknowledged by etcd: from the arrival of the checkpoint's PENDING event on ` +
    `WatchCheckpoints to its COMPLETED event (both sent by the coordinator, on one stream); ${setupText}`;
  const callText = `the TriggerCheckpoint(wait) call, from call to reply, as its caller sees it; ${setupText}`;
  const row = (id: string, ms: number, conditions: string, target?: number): Row => ({
    id: `checkpoint.${id}`,
    value: significant(ms),
    unit: 'ms',
    target: target === undefined ? null : significant(target),
    ratio: significant(ms / floorMs, 3),
    met: target === undefined ? null : ms <= target,
    conditions,
  });
  return [
    row(`latency.n${tasks}.p50`, latency.p50, `target ${factor} × Floor(N); ${latencyText}`, factor * floorMs),
    row(`latency.n${tasks}.p99`, latency.p99, latencyText),
    row(`trigger_call.n${tasks}.p50`, call.p50, callText),
    row(`trigger_call.n${tasks}.p99`, call.p99, callText),
    { ...row(`floor.n${tasks}`, floorMs, floor.formula), ratio: null },
  ];
}
