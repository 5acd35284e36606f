/**
 * Scenario `scale`: the coordinator at scale, each figure beside a floor
 * measured in the same run on the same systems with nothing of ckpt's
 * logic.
 *
 * - One job of 100,000 source tasks in 16 worker processes
 *   (`lib/scale-big-job.ts`): checkpoint latency, each checkpoint followed
 *   by a floor round of the same work (one trigger, the same bytes of
 *   acknowledgement over one bare gRPC stream per process, the manifest's
 *   parts and one transaction of what the coordinator committed), held to
 *   1.5 × the floor at p50; the coordinator's peak resident memory, held to
 *   1 GiB; recovery after a worker process is killed, from the
 *   coordinator's detection to every task ready, held to 2 s.
 * - 1,000 jobs of 16 tasks, each checkpointing every second for 5 minutes
 *   (`lib/scale-many-jobs.ts`): trigger to complete as the workers see it,
 *   held to 2 × the floor at p99, where the floor runs as many jobs at the
 *   same interval on the bare systems for as long; the coordinator's CPU
 *   per checkpoint.
 *
 * `--quick` runs both far smaller. `CKPT_BENCH_CPU_PROF_DIR` profiles the
 * coordinator (`lib/coordinator-child.ts`).
 *
 *   node --import tsx bench/run.ts --only scale [--quick]
 */
import { median, significant, spread } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { BIG_JOB_HEARTBEAT_TIMEOUT_MS, runBigJob, type BigJobPlan, type BigJobSamples } from './lib/scale-big-job.js';
import { runManyJobs, type ManyJobsPlan, type ManyJobsSamples, type PhaseLoad } from './lib/scale-many-jobs.js';
import { COORDINATOR_NODE_FLAGS } from './lib/coordinator-child.js';
import { coresText } from './lib/system.js';

/** Latency p50 ÷ floor p50 at most, one big job. */
const BIG_P50_FACTOR = 1.5;
/** The coordinator's peak resident memory at most. */
const MAX_RSS_BYTES = 1024 ** 3;
/** Detection to every task ready at most, every kill. */
const MAX_DETECTION_TO_READY_MS = 2000;
/** Commit p99 ÷ floor p99 at most, many jobs. */
const MANY_P99_FACTOR = 2;

const FULL: { big: BigJobPlan; many: ManyJobsPlan } = {
  big: { tasks: 100_000, processes: 16, warmup: 3, checkpoints: 20, kills: 3 },
  many: { jobs: 1000, tasksPerJob: 16, processes: 16, intervalMs: 1000, durationMs: 300_000 },
};
const QUICK: typeof FULL = {
  big: { tasks: 2000, processes: 4, warmup: 1, checkpoints: 3, kills: 1 },
  many: { jobs: 16, tasksPerJob: 16, processes: 2, intervalMs: 1000, durationMs: 5000 },
};

/** Parts one and two with the sizes of `plan` (the full or the quick one by default). */
export function scaleScenario(plan?: { big: BigJobPlan; many: ManyJobsPlan }): Scenario {
  return async (ctx) => {
    const p = plan ?? (ctx.quick === true ? QUICK : FULL);
    const big = await runBigJob(ctx, p.big);
    const bigRows = bigJobRows(ctx, big);
    for (const row of bigRows)
      ctx.log(`${row.id} = ${row.value} ${row.unit}${row.ratio === null ? '' : ` (${row.ratio} × floor)`}`);
    const many = await runManyJobs(ctx, p.many);
    return [...bigRows, ...manyJobsRows(ctx, many)];
  };
}

/**
 * The scenario as `make bench` runs it, sized by the environment (the
 * quick or full plan's other figures stay):
 *
 * - `CKPT_BENCH_SCALE_BIG=TASKS:PROCESSES` sizes the big job, `=0` leaves
 *   it out;
 * - `CKPT_BENCH_SCALE_MANY=JOBS:SECONDS` sizes the many jobs (how many, and
 *   how long each phase is measured), `=0` leaves them out.
 */
export const scale: Scenario = (ctx) => {
  const base = ctx.quick === true ? QUICK : FULL;
  const big = sizeFromEnv('CKPT_BENCH_SCALE_BIG', 'TASKS:PROCESSES');
  const many = sizeFromEnv('CKPT_BENCH_SCALE_MANY', 'JOBS:SECONDS');
  const plan = {
    big: big === undefined || big === 'off' ? base.big : { ...base.big, tasks: big[0], processes: big[1] },
    many:
      many === undefined || many === 'off' ? base.many : { ...base.many, jobs: many[0], durationMs: many[1] * 1000 },
  };
  if (big !== undefined && big !== 'off' && big[0] < big[1]) {
    throw new Error(`CKPT_BENCH_SCALE_BIG=${big.join(':')}: the tasks must be at least the processes`);
  }
  return (async () => {
    const rows: Row[] = [];
    if (big !== 'off') {
      const bigRows = bigJobRows(ctx, await runBigJob(ctx, plan.big));
      for (const row of bigRows)
        ctx.log(`${row.id} = ${row.value} ${row.unit}${row.ratio === null ? '' : ` (${row.ratio} × floor)`}`);
      rows.push(...bigRows);
    }
    if (many !== 'off') rows.push(...manyJobsRows(ctx, await runManyJobs(ctx, plan.many)));
    return rows;
  })();
};

/** `A:B` of whole numbers of at least 1 from `name`, 'off' for `0`, undefined when unset. */
function sizeFromEnv(name: string, shape: string): [number, number] | 'off' | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  if (text === '0') return 'off';
  const numbers = text.split(':').map(Number);
  const [a, b] = numbers;
  if (numbers.length !== 2 || !Number.isInteger(a) || !Number.isInteger(b) || a! < 1 || b! < 1) {
    throw new Error(`${name}=${text}: want ${shape}, whole numbers of at least 1, or 0 to leave this part out`);
  }
  return [a!, b!];
}

function bigJobRows(ctx: ScenarioContext, s: BigJobSamples): Row[] {
  const { tasks, processes } = s.plan;
  const n = `n${tasks}`;
  const latency = spread(s.latencyMs);
  const floor = spread(s.floor.map((r) => r.ms));
  const fanOut = spread(s.floor.map((r) => r.fanOutMs));
  const etcd = spread(s.floor.map((r) => r.etcdMs));
  const parts = spread(s.floor.map((r) => r.partsMs));
  const messages = s.acks.flat().map((a) => a.messageBytes.length);
  const ackBytes = s.acks.flat().map((a) => a.messageBytes.reduce((sum, b) => sum + b, 0));
  const setup =
    `one job of ${tasks} source tasks (no edges) in ${processes} worker processes, one simulated worker each ` +
    `(test/sim on src/worker-protocol, the SDK's session and acknowledgement batching, ackBatchMs 5, at most 1000 ` +
    `snapshots per acknowledgement message, HTTP/2 keepalive timeout 30 s), ` +
    `${Math.floor(tasks / processes)}-${Math.ceil(tasks / processes)} tasks each, every task acknowledging a ` +
    `sim:// state handle of 1024 B; coordinator \`ckpt coordinator\` in its own process (node ${COORDINATOR_NODE_FLAGS.join(' ')}, log level info, to a ` +
    `file, heartbeat timeout ${BIG_JOB_HEARTBEAT_TIMEOUT_MS} ms) on single-member ${ctx.system.etcd} and ${ctx.system.nats}; ${s.latencyMs.length} sequential ` +
    `checkpoints by TriggerCheckpoint(wait), each followed by one floor round, after ${s.plan.warmup} warm-up ` +
    `pairs; Node.js ${process.version}, all on ${coresText(ctx.system)}`;
  const commit = s.commit;
  const floorText =
    `the floor of the same checkpoints, one round after each, from a process of its own: one NATS publish of a ` +
    `Trigger reaching the ${processes} worker processes; each answers on its own bare @grpc/grpc-js stream with as ` +
    `many messages of as many bytes as its simulated worker sent to acknowledge that checkpoint (median ` +
    `${significant(median(ackBytes))} B per process in ${Math.min(...messages)}-${Math.max(...messages)} ` +
    `message(s)); then the coordinator's commit of that checkpoint read back from etcd and written again under ` +
    `another prefix: ${commit?.parts ?? 0} manifest part(s) (${significant(commit?.partBytes ?? 0)} B of keys and ` +
    `values, ${4} at once as the store writes them) and one transaction of its puts ` +
    `(${significant(commit?.putBytes ?? 0)} B) and deletes, guarded as the store guards a commit (latest, epoch, ` +
    `leadership key, every part); publish to etcd's answer; answers p50 ${significant(fanOut.p50)} ms, parts p50 ` +
    `${significant(parts.p50)} ms, etcd p50 ${significant(etcd.p50)} ms; ${setup}`;
  const latencyText = `trigger to commit acknowledged: the checkpoint's PENDING to its COMPLETED event on WatchCheckpoints; ${setup}`;
  const ms = (id: string, value: number, conditions: string, ratioTo?: number, target?: number): Row => ({
    id: `scale.${id}`,
    value: significant(value),
    unit: 'ms',
    target: target === undefined ? null : significant(target),
    ratio: ratioTo === undefined ? null : significant(value / ratioTo, 3),
    met: target === undefined ? null : value <= target,
    conditions,
  });
  const recoveries = s.recoveries;
  const detection = recoveries.map((r) => r.detectionToReadyMs);
  const recoveryText =
    `${recoveries.length} kill(s), one at a time, of one of the ${processes} worker processes (SIGKILL); a warm ` +
    `spare process (staged before the kill: its job's spec read, its tasks wired, NATS and the coordinator's ` +
    `address connected) attaches its ${Math.ceil(tasks / processes)} tasks under the same worker id at once ` +
    `(subscriptions, hello, welcome with the spec, restore, ready); from the ` +
    `coordinator's "worker detached" log line to its "every task ready: job started" line of the next epoch ` +
    `(each: ${detection.join(', ')} ms; kill to ready ${recoveries.map((r) => r.killToReadyMs).join(', ')} ms; ` +
    `detection to the restore commands ${recoveries.map((r) => r.detectionToRestoreMs).join(', ')} ms, to the ` +
    `spare's session opened ${recoveries.map((r) => r.detectionToAttachMs).join(', ')} ms); ` +
    `target ${MAX_DETECTION_TO_READY_MS} ms for the slowest; ${setup}`;
  const mib = (bytes: number): number => significant(bytes / 1024 ** 2);
  return [
    ms(
      `${n}.latency.p50`,
      latency.p50,
      `target ${BIG_P50_FACTOR} × floor p50; ${latencyText}`,
      floor.p50,
      BIG_P50_FACTOR * floor.p50,
    ),
    ms(`${n}.latency.p99`, latency.p99, `ratio to the floor's p99; ${latencyText}`, floor.p99),
    ms(`${n}.floor.p50`, floor.p50, floorText),
    ms(`${n}.floor.p99`, floor.p99, floorText),
    {
      id: `scale.${n}.coordinator_rss_peak`,
      value: mib(s.peakRssBytes),
      unit: 'MiB',
      target: mib(MAX_RSS_BYTES),
      ratio: null,
      met: s.peakRssBytes <= MAX_RSS_BYTES,
      conditions:
        `the coordinator process's peak resident set (VmHWM, and VmRSS read every 200 ms) from its start through ` +
        `the checkpoints and the recoveries; ${mib(s.rssAfterBytes)} MiB after the checkpoints; ${setup}`,
    },
    ms(
      `${n}.coordinator_cpu_per_checkpoint`,
      s.cpuMs / Math.max(1, s.latencyMs.length),
      `the coordinator process's CPU time (user and system, /proc) over the checkpoints (and the floor's rounds ` +
        `between them, where it is idle), ${significant(s.cpuMs)} ms, divided by the ${s.latencyMs.length} ` +
        `checkpoints; ${setup}`,
    ),
    ms(
      `${n}.recovery.detection_to_ready.max`,
      Math.max(...detection),
      recoveryText,
      undefined,
      MAX_DETECTION_TO_READY_MS,
    ),
    ms(`${n}.recovery.detection_to_ready.p50`, median(detection), recoveryText),
    ms(
      `${n}.attach`,
      s.attachMs,
      `from the first worker's hello to every task attached and running (the coordinator's "every task ready: ` +
        `job started" log line, then GetJob): ${processes} simulated workers ` +
        `attaching at once, each welcomed with the job's spec of ${tasks} tasks; ${setup}`,
    ),
  ];
}

function manyJobsRows(ctx: ScenarioContext, s: ManyJobsSamples): Row[] {
  const { jobs, tasksPerJob, processes, intervalMs, durationMs } = s.plan;
  const commit = spread(s.commitMs);
  const floor = spread(s.floorMs);
  const seconds = durationMs / 1000;
  const setup =
    `${jobs} jobs of ${tasksPerJob} source tasks, each checkpointing every ${intervalMs} ms (policy intervalMs), ` +
    `their simulated workers (one per job, test/sim) spread over ${processes} worker processes; one coordinator ` +
    `\`ckpt coordinator\` (node ${COORDINATOR_NODE_FLAGS.join(' ')}, log level info, to a file) on single-member ${ctx.system.etcd} and ${ctx.system.nats}; ` +
    `measured for ${seconds} s once every job ran; Node.js ${process.version}, all on ${coresText(ctx.system)}`;
  const commitText =
    `trigger to complete as the workers see it: from a trigger's arrival at a job's simulated worker to the ` +
    `arrival of that checkpoint's complete broadcast; ${s.commitMs.length} checkpoints ` +
    `(${significant(s.commitMs.length / seconds)}/s); ${loadText(s.load.ckpt, 'the coordinator')}; ${setup}`;
  const floorText =
    `the floor, after the ckpt phase with the coordinator stopped, for as long: ${jobs} jobs, each a round every ` +
    `${intervalMs} ms (skipped while its previous one runs: ${s.floorOutcome.skipped}; failed: ` +
    `${s.floorOutcome.failed}${failureText(s.floorOutcome.failures)}) from a process of its own: a Trigger on NATS to the job's worker process, its ` +
    `answer of ${s.ackBytes} B (one simulated worker's acknowledgement of ${tasksPerJob} tasks) on the job's own ` +
    `bare gRPC stream, one etcd transaction of the keys and values the coordinator committed for one of its ` +
    `checkpoints (${s.sample.putBytes} B of puts, ${s.sample.parts} parts) guarded as the store guards a commit, ` +
    `then a CheckpointComplete on NATS; timed in the worker process from the trigger's arrival to the ` +
    `complete's; ${s.floorMs.length} rounds; ${loadText(s.load.floor, "the floor's process")}; ${setup}`;
  const ms = (id: string, value: number, conditions: string, ratioTo?: number, target?: number): Row => ({
    id: `scale.jobs${jobs}.${id}`,
    value: significant(value),
    unit: 'ms',
    target: target === undefined ? null : significant(target),
    ratio: ratioTo === undefined ? null : significant(value / ratioTo, 3),
    met: target === undefined ? null : value <= target,
    conditions,
  });
  const completed = Math.max(1, s.commitMs.length);
  return [
    ms('commit.p50', commit.p50, commitText, floor.p50),
    ms(
      'commit.p99',
      commit.p99,
      `target ${MANY_P99_FACTOR} × floor p99; ${commitText}`,
      floor.p99,
      MANY_P99_FACTOR * floor.p99,
    ),
    ms('floor.p50', floor.p50, floorText),
    ms('floor.p99', floor.p99, floorText),
    {
      id: `scale.jobs${jobs}.checkpoints_per_s`,
      value: significant(s.commitMs.length / seconds),
      unit: 'checkpoints/s',
      target: null,
      ratio: significant(s.commitMs.length / Math.max(1, s.floorMs.length), 3),
      met: null,
      conditions: `checkpoints completed per second; ratio to the floor's rounds (${s.floorMs.length}); ${setup}`,
    },
    {
      id: `scale.jobs${jobs}.coordinator_cpu_per_checkpoint`,
      value: significant(s.cpuMs / completed),
      unit: 'ms/checkpoint',
      target: null,
      ratio: null,
      met: null,
      conditions:
        `the coordinator process's CPU time (user and system, /proc) over the ${seconds} s, ` +
        `${significant(s.cpuMs)} ms, divided by the ${s.commitMs.length} checkpoints completed; peak resident ` +
        `set ${significant(s.peakRssBytes / 1024 ** 2)} MiB; ${setup}`,
    },
  ];
}

/** How busy a phase kept the machine, for a row's conditions. */
function loadText(load: PhaseLoad, own: string): string {
  const cores =
    load.processCores === undefined
      ? ''
      : `etcd, the NATS server, the worker processes and ${own} used ${significant(load.processCores, 3)} cores ` +
        `(their CPU time per second, /proc); `;
  return `${cores}the machine's CPU (every core, /proc/stat) was ${Math.round(load.machineBusy * 100)} % busy`;
}

/** `, 3 with "deadline exceeded"`: why floor rounds failed, for a row's conditions. */
function failureText(failures: Record<string, number>): string {
  return Object.entries(failures)
    .map(([message, count]) => `, ${count} with "${message}"`)
    .join('');
}
