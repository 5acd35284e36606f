/**
 * Scenario 3, acknowledgement intake: how many task acknowledgements per
 * second the coordinator takes in at saturation, against the message rate
 * of one bare gRPC stream (the floor). Several checkpoints are pending at
 * once; simulated workers in four worker processes, whose tasks stay
 * silent, send every task's acknowledgement of each, prepared, back to
 * back, each worker in checkpoint order: in their sessions, as workers
 * send them, and, for comparison, as AcknowledgeCheckpoint calls. The
 * intake is the acknowledgements over the time from the first send to the
 * last result. The checkpoints commit within that time, as they would in
 * service. Held to at least 0.8 × the stream rate.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { createCoordinatorClient, type CoordinatorClient } from '../src/client/index.js';
import { sourcesJob, waitRunning } from './lib/bench-job.js';
import { startCoordinatorChild } from './lib/coordinator-child.js';
import { floorModel } from './lib/floor-model.js';
import { median, significant } from './lib/percentiles.js';
import type { Row, Scenario } from './lib/row.js';
import type { AckCommand } from './lib/worker-child.js';
import { WorkerPool } from './lib/worker-pool.js';

/** Worker processes sending acknowledgements. */
const WORKER_PROCESSES = 4;
/**
 * Simulated workers per process. Each keeps one call in flight, in
 * checkpoint order, so that no later checkpoint completes first and
 * subsumes an earlier one; eight of them keep the coordinator busy.
 */
const WORKERS_PER_PROCESS = 2;
const WORKERS = WORKER_PROCESSES * WORKERS_PER_PROCESS;
/** The bound on intake ÷ stream rate. */
const TARGET_FACTOR = 0.8;
/** The job of the scenario. */
const JOB_ID = 'intake';
/** Calls of one acknowledgement each that a worker keeps in flight. */
const UNBATCHED_WINDOW = 64;

/** How much is sent. */
interface Plan {
  tasks: number;
  /** Checkpoints pending at once in a batched round. */
  pending: number;
  /** Timed rounds after one warm-up round, batched and one-per-call. */
  rounds: number;
  unbatchedRounds: number;
}

const FULL: Plan = { tasks: 4096, pending: 8, rounds: 5, unbatchedRounds: 2 };
const QUICK: Plan = { tasks: 1024, pending: 4, rounds: 2, unbatchedRounds: 1 };

/** One round's outcome. */
interface Round {
  acks: number;
  calls: number;
  spanMs: number;
  rate: number;
}

/** Measures `ack.intake.rate` (batched as workers batch) and `ack.intake.unbatched.rate`. */
export const ackThroughput: Scenario = async (ctx) => {
  const plan = ctx.quick === true ? QUICK : FULL;
  const floor = floorModel(ctx.earlier);
  const coordinator = await startCoordinatorChild({ etcd: ctx.etcd, nats: ctx.nats, prefix: ctx.prefix });
  const pool = WorkerPool.start(WORKER_PROCESSES);
  const client = createCoordinatorClient(coordinator.address);
  try {
    const spec = sourcesJob(JOB_ID, plan.tasks, { maxConcurrent: plan.pending, timeoutMs: 120_000 });
    await client.submitJob({ spec });
    const target = { coordinator: coordinator.address, nats: ctx.nats, subjectPrefix: ctx.prefix };
    await pool.attach(target, spec, 'silent', WORKERS_PER_PROCESS);
    await waitRunning(client, JOB_ID, plan.tasks);
    const measured = await measureIntake(client, pool, plan);
    const rates = [measured.batched, measured.calls, measured.unbatched].map((rounds) =>
      Math.round(median(rounds.map((r) => r.rate))),
    );
    ctx.log(`intake ${rates[0]} acks/s batched in the sessions, ${rates[1]} as calls, ${rates[2]} one per message`);
    return intakeRows(plan, floor.streamRate, measured);
  } finally {
    client.close();
    await pool.stop();
    await coordinator.stop();
  }
};

/** A warm-up round, then the batched rounds, then the one-per-call rounds. */
async function measureIntake(client: CoordinatorClient, pool: WorkerPool, plan: Plan): Promise<Measured> {
  const slice = Math.ceil(plan.tasks / WORKERS);
  const batched = (via: AckCommand['via']) => (): Promise<Round> =>
    round(client, pool, plan.pending, { batchSize: slice, window: 1, via });
  const unbatched = (): Promise<Round> =>
    round(client, pool, 1, { batchSize: 1, window: UNBATCHED_WINDOW, via: 'session' });
  await batched('session')();
  return {
    batched: await repeat(plan.rounds, batched('session')),
    calls: await repeat(plan.rounds, batched('call')),
    unbatched: await repeat(plan.unbatchedRounds, unbatched),
  };
}

/** The rounds of each way of sending. */
interface Measured {
  /** Each worker's tasks of a checkpoint in one message in its session. */
  batched: Round[];
  /** The same as AcknowledgeCheckpoint calls. */
  calls: Round[];
  /** One task per message in the session. */
  unbatched: Round[];
}

function intakeRows(plan: Plan, streamRate: number, measured: Measured): Row[] {
  const slice = Math.ceil(plan.tasks / WORKERS);
  const rate = median(measured.batched.map((r) => r.rate));
  const callsRate = median(measured.calls.map((r) => r.rate));
  const unbatchedRate = median(measured.unbatched.map((r) => r.rate));
  const setup =
    `${plan.tasks} source tasks over ${WORKERS} simulated workers (tasks silent) in ${WORKER_PROCESSES} processes, ` +
    `coordinator \`ckpt coordinator\` in its own process; acknowledgements prepared before the clock starts; ` +
    `rate = acknowledgements / (last result - first send) over all workers`;
  const batching =
    `per round ${plan.pending} checkpoints pending at once, each worker acknowledging its ${slice} tasks of each ` +
    `at once (as a worker batches), one acknowledgement in flight per worker, in checkpoint order; the checkpoints ` +
    `commit within the span`;
  return [
    {
      id: 'ack.intake.rate',
      value: significant(rate),
      unit: 'acks/s',
      target: significant(TARGET_FACTOR * streamRate),
      ratio: significant(rate / streamRate, 3),
      met: rate >= TARGET_FACTOR * streamRate,
      conditions:
        `target ${TARGET_FACTOR} × the bare stream rate ${streamRate} msg/s; in one SessionAcknowledge message ` +
        `in the worker's Attach stream per worker and checkpoint, as workers send them; median of ${plan.rounds} ` +
        `rounds (${describe(measured.batched)}) after 1 warm-up; ${batching}; ${setup}`,
    },
    {
      id: 'ack.intake.calls.rate',
      value: significant(callsRate),
      unit: 'acks/s',
      target: null,
      ratio: significant(callsRate / streamRate, 3),
      met: null,
      conditions:
        `the same as ack.intake.rate as one AcknowledgeCheckpoint call per worker and checkpoint (how a worker ` +
        `acknowledges while its session reconnects, and any other client); median of ${plan.rounds} rounds ` +
        `(${describe(measured.calls)}); ${batching}; ${setup}`,
    },
    {
      id: 'ack.intake.unbatched.rate',
      value: significant(unbatchedRate),
      unit: 'acks/s',
      target: null,
      ratio: significant(unbatchedRate / streamRate, 3),
      met: null,
      conditions:
        `one acknowledgement per SessionAcknowledge message, ${UNBATCHED_WINDOW} in flight per worker, one ` +
        `checkpoint per round; median of ${plan.unbatchedRounds} rounds (${describe(measured.unbatched)}); ${setup}`,
    },
  ];
}

async function repeat(times: number, run: () => Promise<Round>): Promise<Round[]> {
  const rounds: Round[] = [];
  for (let i = 0; i < times; i++) rounds.push(await run());
  return rounds;
}

function describe(rounds: readonly Round[]): string {
  return rounds
    .map((r) => `${Math.round(r.rate)} acks/s: ${r.acks} in ${r.calls} sends, ${r.spanMs.toFixed(1)} ms`)
    .join('; ');
}

/**
 * Triggers `pending` checkpoints, has every worker acknowledge all of them
 * at once, and waits until the last one is committed.
 */
async function round(
  client: CoordinatorClient,
  pool: WorkerPool,
  pending: number,
  sending: Pick<AckCommand, 'batchSize' | 'window' | 'via'>,
): Promise<Round> {
  const checkpointIds: number[] = [];
  let epoch = 0;
  for (let i = 0; i < pending; i++) {
    const { checkpoint } = await client.triggerCheckpoint({ jobId: JOB_ID, wait: false });
    if (checkpoint === null) throw new Error('TriggerCheckpoint returned no checkpoint');
    checkpointIds.push(checkpoint.checkpointId);
    epoch = checkpoint.epoch;
  }
  const reports = await pool.acknowledge({ checkpointIds, epoch, ...sending });
  const spanMs = Math.max(...reports.map((r) => r.finishedAtMs)) - Math.min(...reports.map((r) => r.startedAtMs));
  const acks = reports.reduce((sum, r) => sum + r.acks, 0);
  const calls = reports.reduce((sum, r) => sum + r.calls, 0);
  await waitCommitted(client, checkpointIds[checkpointIds.length - 1]!);
  return { acks, calls, spanMs, rate: (acks / spanMs) * 1000 };
}

async function waitCommitted(client: CoordinatorClient, checkpointId: number): Promise<void> {
  const jobId = JOB_ID;
  const until = Date.now() + 60_000;
  for (;;) {
    const { job } = await client.getJob({ jobId });
    if ((job?.latestCheckpointId ?? 0) >= checkpointId) return;
    if (Date.now() > until) throw new Error(`checkpoint ${checkpointId} of ${jobId} not committed within a minute`);
    await delay(5);
  }
}
