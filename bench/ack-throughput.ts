/**
 * Scenario 3, acknowledgement intake: how many acknowledgements the
 * coordinator takes in per second at saturation. Simulated workers in four
 * worker processes, whose tasks stay silent, send prepared
 * acknowledgements back to back, each worker in checkpoint order; the
 * intake is the acknowledgements over the time from the first send to the
 * last result, and the checkpoints commit within that time, as they would
 * in service.
 *
 * Held: one acknowledgement per SessionAcknowledge message, in messages per
 * second, to at least 0.8 × the message rate of one bare gRPC stream (the
 * floor's `floor.grpc_stream.rate`). Reported beside: one acknowledgement
 * per AcknowledgeCheckpoint call, and batched intake (each worker's tasks
 * of a checkpoint in one message, as the SDK sends them) in bytes per
 * second against a bare stream of messages of the same size, measured here.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { createCoordinatorClient, type CoordinatorClient } from '../src/client/index.js';
import { STREAM_WINDOW, streamRate } from './lib/bare-stream.js';
import { forkBenchChild } from './lib/bench-child.js';
import { sourcesJob, waitRunning } from './lib/bench-job.js';
import { startCoordinatorChild } from './lib/coordinator-child.js';
import { createEchoClient } from './lib/echo-service.js';
import { median, significant } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText } from './lib/system.js';
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
/** Messages (or calls) of one acknowledgement each that a worker keeps in flight. */
const SINGLE_WINDOW = 64;
/** The floor row the one-per-message intake is held to. */
const STREAM_RATE_ROW = 'floor.grpc_stream.rate';
const ECHO_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'echo-child.ts');

/** How much is sent. */
interface Plan {
  tasks: number;
  /** Checkpoints pending at once in a batched round. */
  pending: number;
  /** Timed rounds of each kind, after one warm-up round of each. */
  rounds: number;
  /** Bare stream runs at the batched message size. */
  streamRuns: number;
}

const FULL: Plan = { tasks: 4096, pending: 8, rounds: 5, streamRuns: 3 };
const QUICK: Plan = { tasks: 1024, pending: 4, rounds: 2, streamRuns: 1 };

/** One round's outcome. */
interface Round {
  acks: number;
  calls: number;
  bytes: number;
  spanMs: number;
  /** Acknowledgements per second. */
  rate: number;
}

/** Measures `ack.intake.rate` (one per message, held), `ack.intake.calls.rate` and `ack.intake.batched.*`. */
export const ackThroughput: Scenario = async (ctx) => {
  const plan = ctx.quick === true ? QUICK : FULL;
  const streamRow = ctx.earlier.get(STREAM_RATE_ROW);
  if (streamRow === undefined) throw new Error(`the intake target needs ${STREAM_RATE_ROW}; run the floor first`);
  const coordinator = await startCoordinatorChild({ etcd: ctx.etcd, nats: ctx.nats, prefix: ctx.prefix });
  const pool = WorkerPool.start(WORKER_PROCESSES);
  const client = createCoordinatorClient(coordinator.address);
  let measured: Measured;
  try {
    const spec = sourcesJob(JOB_ID, plan.tasks, { maxConcurrent: plan.pending, timeoutMs: 120_000 });
    await client.submitJob({ spec });
    const target = { coordinator: coordinator.address, nats: ctx.nats, subjectPrefix: ctx.prefix };
    await pool.attach(target, spec, 'silent', WORKERS_PER_PROCESS);
    await waitRunning(client, JOB_ID, plan.tasks);
    measured = await measureIntake(client, pool, plan);
  } finally {
    client.close();
    await pool.stop();
    await coordinator.stop();
  }
  const batchedMessageBytes = Math.round(measured.batched[0]!.bytes / measured.batched[0]!.calls);
  const bareStream = await bareStreamRates(ctx, plan, batchedMessageBytes);
  const rates = [measured.single, measured.calls, measured.batched].map((r) =>
    Math.round(median(r.map((x) => x.rate))),
  );
  ctx.log(`intake ${rates[0]} acks/s one per message, ${rates[1]} one per call, ${rates[2]} batched`);
  return intakeRows(ctx, plan, streamRow.value, measured, { bytes: batchedMessageBytes, rates: bareStream });
};

/** Warm-up rounds, then the timed rounds of each way of sending. */
async function measureIntake(client: CoordinatorClient, pool: WorkerPool, plan: Plan): Promise<Measured> {
  const slice = Math.ceil(plan.tasks / WORKERS);
  const batched = (): Promise<Round> =>
    round(client, pool, plan.pending, { batchSize: slice, window: 1, via: 'session' });
  const single = (via: AckCommand['via']) => (): Promise<Round> =>
    round(client, pool, 1, { batchSize: 1, window: SINGLE_WINDOW, via });
  await batched();
  await single('session')();
  return {
    single: await repeat(plan.rounds, single('session')),
    calls: await repeat(plan.rounds, single('call')),
    batched: await repeat(plan.rounds, batched),
  };
}

/** The rounds of each way of sending. */
interface Measured {
  /** One acknowledgement per SessionAcknowledge message in the session. */
  single: Round[];
  /** One acknowledgement per AcknowledgeCheckpoint call. */
  calls: Round[];
  /** Each worker's tasks of a checkpoint in one message in its session. */
  batched: Round[];
}

/** A bare stream at the batched size: its message size and the rates of its runs, messages/s. */
interface BareStream {
  bytes: number;
  rates: number[];
}

/** Runs of the bare echo stream with payloads of `bytes`, in messages per second. */
async function bareStreamRates(ctx: ScenarioContext, plan: Plan, bytes: number): Promise<number[]> {
  const echo = forkBenchChild('echo server', ECHO_CHILD);
  try {
    const address = await echo.request<string>({ kind: 'start', nats: ctx.nats, subject: `${ctx.prefix}.echo` });
    const client = createEchoClient(address);
    try {
      const payload = Buffer.alloc(bytes, 1);
      const messages = bareMessages(plan);
      await streamRate(client, Math.ceil(messages / 10), payload);
      const rates: number[] = [];
      for (let run = 0; run < plan.streamRuns; run++) rates.push(await streamRate(client, messages, payload));
      return rates;
    } finally {
      client.close();
    }
  } finally {
    await echo.stop();
  }
}

/** Messages per bare stream run: as many as the batched rounds sent in all. */
function bareMessages(plan: Plan): number {
  return plan.pending * WORKERS * plan.rounds;
}

function intakeRows(ctx: ScenarioContext, plan: Plan, streamRate: number, m: Measured, bare: BareStream): Row[] {
  const slice = Math.ceil(plan.tasks / WORKERS);
  const rateOf = (rounds: readonly Round[]): number => median(rounds.map((r) => r.rate));
  const single = rateOf(m.single);
  const calls = rateOf(m.calls);
  const batchedBytesRate = median(m.batched.map((r) => (r.bytes / r.spanMs) * 1000));
  const bareBytesRate = median(bare.rates) * bare.bytes;
  const setup =
    `${plan.tasks} source tasks over ${WORKERS} simulated workers (test/sim, tasks silent) in ${WORKER_PROCESSES} ` +
    `processes, coordinator \`ckpt coordinator\` in its own process on ${ctx.system.etcd} and ${ctx.system.nats}; ` +
    `acknowledgements prepared before the clock starts; rate = acknowledgements / (last result - first send) over ` +
    `all workers; all on ${coresText(ctx.system)}`;
  const one = (via: string, rounds: readonly Round[]): string =>
    `one acknowledgement per ${via}, ${SINGLE_WINDOW} in flight per worker, one checkpoint per round ` +
    `(${rounds[0] === undefined ? 0 : Math.round(rounds[0].bytes / rounds[0].calls)} B each as a session message); median ` +
    `of ${plan.rounds} rounds (${describe(rounds)}) after 1 warm-up; ${setup}`;
  const batching =
    `per round ${plan.pending} checkpoints pending at once, each worker acknowledging its ${slice} tasks of each in ` +
    `one SessionAcknowledge message (${bare.bytes} B on average, as the SDK batches), one message in flight per ` +
    `worker, in checkpoint order; median of ${plan.rounds} rounds (${describe(m.batched)}) after 1 warm-up`;
  return [
    {
      id: 'ack.intake.rate',
      value: significant(single),
      unit: 'acks/s',
      target: significant(TARGET_FACTOR * streamRate),
      ratio: significant(single / streamRate, 3),
      met: single >= TARGET_FACTOR * streamRate,
      conditions:
        `target ${TARGET_FACTOR} × the bare stream's ${streamRate} msg/s (${STREAM_RATE_ROW}); acknowledgements ` +
        `= messages here: ${one("SessionAcknowledge message in the worker's Attach stream", m.single)}`,
    },
    {
      id: 'ack.intake.calls.rate',
      value: significant(calls),
      unit: 'acks/s',
      target: null,
      ratio: significant(calls / streamRate, 3),
      met: null,
      conditions:
        `ratio to ${STREAM_RATE_ROW}, reported only: each acknowledgement is a unary call, not a stream message; ` +
        one('AcknowledgeCheckpoint call (how a worker acknowledges while its session reconnects)', m.calls),
    },
    {
      id: 'ack.intake.batched.rate',
      value: significant(rateOf(m.batched)),
      unit: 'acks/s',
      target: null,
      ratio: null,
      met: null,
      conditions: `acknowledgements batched as the SDK sends them: ${batching}; ${setup}`,
    },
    {
      id: 'ack.intake.batched.bytes_rate',
      value: significant(batchedBytesRate),
      unit: 'bytes/s',
      target: null,
      ratio: significant(batchedBytesRate / bareBytesRate, 3),
      met: null,
      conditions:
        `bytes of SessionAcknowledge messages per second, batched: ${batching}. Ratio to a bare @grpc/grpc-js ` +
        `stream of messages of the same size measured after it (${significant(bareBytesRate)} B/s: median of ` +
        `${plan.streamRuns} runs of ${bareMessages(plan)} messages of ${bare.bytes} B payload, ` +
        `${bare.rates.map((r) => Math.round(r)).join(', ')} msg/s, one stream, each message echoed back, at most ` +
        `${STREAM_WINDOW} unanswered); reported only, as the two differ in more than ckpt's work: the bare ` +
        `stream echoes every message in full on one stream with a deep window, the intake answers each with a ` +
        `small result over ${WORKERS} sessions with one message in flight each; ${setup}`,
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
    .map(
      (r) => `${Math.round(r.rate)} acks/s: ${r.acks} in ${r.calls} sends of ${r.bytes} B, ${r.spanMs.toFixed(1)} ms`,
    )
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
  const bytes = reports.reduce((sum, r) => sum + r.bytes, 0);
  await waitCommitted(client, checkpointIds[checkpointIds.length - 1]!);
  return { acks, calls, bytes, spanMs, rate: (acks / spanMs) * 1000 };
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
