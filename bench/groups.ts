/**
 * Scenario `groups`: do three coordinators carry about three times the
 * jobs of one at the same p99? Two phases in the same run, on the same
 * etcd and NATS (`lib/groups-phase.ts`):
 *
 * - A: one `ckpt coordinator` (one job group), N jobs of T source tasks,
 *   each checkpointing every I ms, measured for D s;
 * - B: three `ckpt coordinator --job-groups 3` processes, each leading one
 *   group, and 3N jobs (N in each group), the same T, I and D.
 *
 * Each reports trigger to complete as the jobs' workers see it (p50, p99),
 * checkpoints completed per second and each coordinator's CPU time per
 * checkpoint; B also per coordinator, with the groups and jobs it led. The
 * rows that hold B to A: the p99 ratio B ÷ A (target at most
 * `P99_RATIO_TARGET`: about the same p99), the throughput ratio B ÷ A
 * (target at least `THROUGHPUT_RATIO_TARGET` of the ideal 3) and the most
 * groups one coordinator led in B (target 1). All ratios are of figures
 * measured in this run.
 *
 * `CKPT_BENCH_GROUPS=JOBS:SECONDS` sets N (jobs of phase A, per group in
 * phase B) and D.
 *
 *   node --import tsx bench/run.ts --only groups [--quick]
 */
import { median, significant, spread } from './lib/percentiles.js';
import { describeLeaders, runPhase, type PhasePlan, type PhaseSamples } from './lib/groups-phase.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText } from './lib/system.js';

/** Coordinators (and job groups) of phase B. */
const COORDINATORS = 3;
/** p99 of B ÷ p99 of A at most: "about the same p99". */
const P99_RATIO_TARGET = 1.25;
/** Checkpoints per second of B ÷ those of A at least: 0.95 of the ideal 3. */
const THROUGHPUT_RATIO_TARGET = 0.95 * COORDINATORS;

/** The sizes of one run. */
export interface GroupsPlan {
  /** Jobs of phase A, and of each group in phase B. */
  jobs: number;
  tasksPerJob: number;
  /** Worker processes of phase A, and of each group in phase B. */
  processes: number;
  intervalMs: number;
  durationMs: number;
  /** The coordinators' `--lease-ttl-ms`: how soon phase B's groups are shared out. */
  leaseTtlMs: number;
}

/**
 * N = 120 jobs of 16 tasks at 1 s keep phase A's coordinator busy but not
 * saturated: in trial runs on this 2-core machine (load average 15-25
 * from other work), 100 jobs took 24-32 % of one core at 2.5-3.3 ms of
 * CPU per checkpoint, so 120 take about 30-40 % (see the
 * `one.coordinator_cpu_share` row), with room left, so that phase A's p99
 * is not a saturation figure. Phase B's 360 jobs then ask three such
 * coordinators and three times the simulated workers of the same 2 cores.
 */
const FULL: GroupsPlan = {
  jobs: 120,
  tasksPerJob: 16,
  processes: 1,
  intervalMs: 1000,
  durationMs: 60_000,
  leaseTtlMs: 5000,
};
const QUICK: GroupsPlan = {
  jobs: 6,
  tasksPerJob: 16,
  processes: 1,
  intervalMs: 500,
  durationMs: 3000,
  leaseTtlMs: 1000,
};

/** The scenario with the sizes of `plan` (the full or the quick one by default, `CKPT_BENCH_GROUPS` over either). */
export function groupsScenario(plan?: GroupsPlan): Scenario {
  return async (ctx) => {
    const p = plan ?? sizedFromEnv(ctx.quick === true ? QUICK : FULL);
    const one: PhasePlan = { ...phaseSizes(p), coordinators: 1, groups: 1 };
    const three: PhasePlan = { ...phaseSizes(p), coordinators: COORDINATORS, groups: COORDINATORS };
    const a = await runPhase(ctx, one, `${ctx.prefix}-a`);
    ctx.log(`phase A: ${summary(a)}`);
    const b = await runPhase(ctx, three, `${ctx.prefix}-b`);
    ctx.log(`phase B: ${summary(b)}`);
    const rows = groupsRows(ctx, a, b);
    for (const row of rows.filter((r) => r.target !== null))
      ctx.log(`${row.id} = ${row.value} ${row.unit} (target ${row.target}, ${row.met === true ? 'met' : 'missed'})`);
    return rows;
  };
}

export const groups: Scenario = groupsScenario();

function phaseSizes(p: GroupsPlan): Omit<PhasePlan, 'coordinators' | 'groups'> {
  return {
    jobsPerGroup: p.jobs,
    tasksPerJob: p.tasksPerJob,
    processesPerGroup: p.processes,
    intervalMs: p.intervalMs,
    durationMs: p.durationMs,
    leaseTtlMs: p.leaseTtlMs,
  };
}

/** `base` with `CKPT_BENCH_GROUPS=JOBS:SECONDS` applied. */
function sizedFromEnv(base: GroupsPlan): GroupsPlan {
  const text = process.env.CKPT_BENCH_GROUPS;
  if (text === undefined || text === '') return base;
  const numbers = text.split(':').map(Number);
  const [jobs, seconds] = numbers;
  if (numbers.length !== 2 || !Number.isInteger(jobs) || !Number.isInteger(seconds) || jobs! < 1 || seconds! < 1) {
    throw new Error(`CKPT_BENCH_GROUPS=${text}: want JOBS:SECONDS, whole numbers of at least 1`);
  }
  return { ...base, jobs: jobs!, durationMs: seconds! * 1000 };
}

function perSecond(s: PhaseSamples): number {
  return s.commitMs.length / (s.phaseMs / 1000);
}

function cpuMs(s: PhaseSamples): number {
  return s.coordinators.reduce((sum, c) => sum + c.cpuMs, 0);
}

function summary(s: PhaseSamples): string {
  const all = spread(s.commitMs);
  const each = s.coordinators
    .map((c) => {
      const own = spread(c.commitMs);
      return (
        `${c.address} led group(s) [${c.groupsLed.join(', ')}] (${c.jobsLed} jobs): ${c.commitMs.length} ` +
        `checkpoints, p50 ${significant(own.p50)} ms, p99 ${significant(own.p99)} ms, CPU ` +
        `${significant(c.cpuMs / Math.max(1, c.commitMs.length), 3)} ms/checkpoint ` +
        `(${significant((100 * c.cpuMs) / s.phaseMs, 3)} % of a core)`
      );
    })
    .join('; ');
  return (
    `${s.commitMs.length} checkpoints in ${(s.phaseMs / 1000).toFixed(1)} s ` +
    `(${significant(perSecond(s), 4)}/s), p50 ${significant(all.p50)} ms, p99 ${significant(all.p99)} ms; ` +
    `machine ${significant(100 * s.machineBusy, 3)} % busy, load ${s.loadBefore.toFixed(2)} → ` +
    `${s.loadAfter.toFixed(2)}; worker processes ${significant((100 * s.workersCpuMs) / s.phaseMs, 3)} % of a ` +
    `core, ${s.sessionsEnded} worker session(s) ended; leaders ` +
    `${s.leadersAfter.join(',') === s.leadersBefore.join(',') ? 'unchanged' : `changed to ${describeLeaders(s.leadersAfter)}`}; ${each}`
  );
}

/** How a phase ran, for the rows' conditions. */
function setupText(ctx: ScenarioContext, s: PhaseSamples, name: string): string {
  const { coordinators, groups: k, jobsPerGroup, tasksPerJob, processesPerGroup, intervalMs } = s.plan;
  const jobs = k * jobsPerGroup;
  const moved = s.leadersAfter.join(',') !== s.leadersBefore.join(',');
  const servers =
    s.serversCpuMs === undefined ? '' : `; etcd and NATS used ${significant(s.serversCpuMs)} ms of CPU together`;
  return (
    `phase ${name}: ${coordinators} \`ckpt coordinator\` process(es) with --job-groups ${k} ` +
    `(--lease-ttl-ms ${s.plan.leaseTtlMs}, log level info, to a file), ${jobs} jobs (${jobsPerGroup} per group, ids ` +
    `picked by their FNV-1a group) of ${tasksPerJob} source tasks, each checkpointing every ${intervalMs} ms ` +
    `(policy intervalMs); one simulated worker per job (test/sim), given every coordinator address with its ` +
    `group's leader first, in ${k * processesPerGroup} worker process(es), each of one group's jobs; leaders ` +
    `${describeLeaders(s.leadersBefore)}${moved ? ` (after: ${describeLeaders(s.leadersAfter)})` : ', unchanged to the end'}; ` +
    `measured for ${(s.phaseMs / 1000).toFixed(1)} s after every job ran and a warm-up; ${s.sessionsEnded} ` +
    `worker session(s) ended and attached again meanwhile; worker processes used ` +
    `${significant(s.workersCpuMs)} ms of CPU; machine ` +
    `${significant(100 * s.machineBusy, 3)} % busy (/proc/stat), 1-minute load average ` +
    `${s.loadBefore.toFixed(2)} → ${s.loadAfter.toFixed(2)}${servers}; single-member ${ctx.system.etcd} and ` +
    `${ctx.system.nats}; Node.js ${process.version}, all on ${coresText(ctx.system)}, shared with whatever else ran`
  );
}

function groupsRows(ctx: ScenarioContext, a: PhaseSamples, b: PhaseSamples): Row[] {
  const setupA = setupText(ctx, a, 'A');
  const setupB = setupText(ctx, b, 'B');
  const row = (
    id: string,
    value: number,
    unit: string,
    conditions: string,
    extra: { ratio?: number; target?: number; atLeast?: boolean } = {},
  ): Row => ({
    id: `groups.${id}`,
    value: significant(value),
    unit,
    target: extra.target === undefined ? null : significant(extra.target),
    ratio: extra.ratio === undefined ? null : significant(extra.ratio, 3),
    met: extra.target === undefined ? null : extra.atLeast === true ? value >= extra.target : value <= extra.target,
    conditions,
  });
  const latencyText =
    'trigger to complete as the workers see it: from a trigger’s arrival at a job’s simulated worker to the ' +
    'arrival of that checkpoint’s complete broadcast';
  const phaseRows = (s: PhaseSamples, name: string, key: string, setup: string, versus?: PhaseSamples): Row[] => {
    const all = spread(s.commitMs);
    const base = versus === undefined ? undefined : spread(versus.commitMs);
    const completed = Math.max(1, s.commitMs.length);
    const seconds = s.phaseMs / 1000;
    return [
      row(`${key}.commit.p50`, all.p50, 'ms', `${latencyText}; ${s.commitMs.length} checkpoints; ${setup}`, {
        ...(base === undefined ? {} : { ratio: all.p50 / base.p50 }),
      }),
      row(`${key}.commit.p99`, all.p99, 'ms', `${latencyText}; ${s.commitMs.length} checkpoints; ${setup}`, {
        ...(base === undefined ? {} : { ratio: all.p99 / base.p99 }),
      }),
      row(
        `${key}.checkpoints_per_s`,
        perSecond(s),
        'checkpoints/s',
        `checkpoints completed per second over the phase, every coordinator's; ${setup}`,
        versus === undefined ? {} : { ratio: perSecond(s) / perSecond(versus) },
      ),
      row(
        `${key}.coordinator_cpu_per_checkpoint`,
        cpuMs(s) / completed,
        'ms/checkpoint',
        `the CPU time (user and system, /proc) of phase ${name}'s coordinator process(es) over the ${seconds} s, ` +
          `${significant(cpuMs(s))} ms together, divided by the ${s.commitMs.length} checkpoints completed; ${setup}`,
        versus === undefined
          ? {}
          : { ratio: cpuMs(s) / completed / (cpuMs(versus) / Math.max(1, versus.commitMs.length)) },
      ),
    ];
  };
  const perCoordinator = b.coordinators.flatMap((c, i) => {
    const own = spread(c.commitMs);
    const who =
      `coordinator ${i} (${c.address}) of phase B, leading job group(s) [${c.groupsLed.join(', ')}]: ` +
      `${c.jobsLed} jobs, ${c.commitMs.length} checkpoints`;
    return [
      row(`three.coordinator${i}.commit.p99`, own.p99, 'ms', `${latencyText}, of the jobs of ${who}; ${setupB}`, {
        ratio: own.p99 / spread(a.commitMs).p99,
      }),
      row(
        `three.coordinator${i}.cpu_per_checkpoint`,
        c.cpuMs / Math.max(1, c.commitMs.length),
        'ms/checkpoint',
        `CPU time (user and system, /proc) of ${who}, ${significant(c.cpuMs)} ms over ${b.phaseMs / 1000} s, ` +
          `divided by its jobs' checkpoints; ${setupB}`,
      ),
      row(
        `three.coordinator${i}.cpu_share`,
        c.cpuMs / b.phaseMs,
        'cores',
        `CPU time of ${who} over the phase's wall time (1: one core busy all along); ${setupB}`,
      ),
      row(`three.coordinator${i}.jobs_led`, c.jobsLed, 'jobs', `jobs led by ${who}; ${setupB}`),
    ];
  });
  const p99A = spread(a.commitMs).p99;
  const p99B = spread(b.commitMs).p99;
  const groupsLed = b.coordinators.map((c) => c.groupsLed.length);
  return [
    ...phaseRows(a, 'A', 'one', setupA),
    row(
      'one.coordinator_cpu_share',
      cpuMs(a) / a.phaseMs,
      'cores',
      `CPU time of phase A's coordinator over the phase's wall time (1: one core busy all along); ${setupA}`,
    ),
    ...phaseRows(b, 'B', 'three', setupB, a),
    ...perCoordinator,
    row(
      'p99_ratio',
      p99B / p99A,
      'ratio',
      `commit p99 of phase B (${significant(p99B)} ms, ${COORDINATORS} coordinators, ${COORDINATORS}× the jobs) ÷ ` +
        `that of phase A (${significant(p99A)} ms, one coordinator), both measured in this run; target at most ` +
        `${P99_RATIO_TARGET}: about the same p99 (p50s ${significant(median(b.commitMs))} and ` +
        `${significant(median(a.commitMs))} ms). ${setupA}. ${setupB}`,
      { target: P99_RATIO_TARGET },
    ),
    row(
      'throughput_ratio',
      perSecond(b) / perSecond(a),
      'ratio',
      `checkpoints completed per second in phase B (${significant(perSecond(b))}) ÷ phase A ` +
        `(${significant(perSecond(a))}), both measured in this run; ideal ${COORDINATORS}, target at least ` +
        `${THROUGHPUT_RATIO_TARGET} (every job's interval kept). ${setupA}. ${setupB}`,
      { target: THROUGHPUT_RATIO_TARGET, atLeast: true },
    ),
    row(
      'three.groups_per_coordinator.max',
      Math.max(...groupsLed),
      'groups',
      `the most job groups one coordinator of phase B led when the measurement began (each coordinator: ` +
        `${groupsLed.join(', ')}), from every coordinator's /api/v1/cluster; target 1, one group each. ${setupB}`,
      { target: 1 },
    ),
  ];
}
