/**
 * One phase of the groups scenario: `coordinators` coordinator processes
 * (`ckpt coordinator --job-groups <groups>`, each in a process of its
 * own) on one etcd prefix, and `jobsPerGroup` jobs in each job group, each
 * job of `tasksPerJob` source tasks checkpointing every `intervalMs`. The
 * jobs' simulated workers (`groups-worker-child.ts`, one per job) run in
 * `processesPerGroup` worker processes per group, so that a worker
 * process's latencies are those of one group's leader. Each worker is
 * given every coordinator address, its group's leader first; a call that
 * reaches another coordinator is refused with NOT_LEADER and follows the
 * leader it names (PROTOCOL.md §13.1).
 *
 * Once every group has a leader of its own (each coordinator's
 * `/api/v1/cluster`) and every job runs, and after a warm-up, the phase is
 * measured for `durationMs`: each checkpoint from its trigger's arrival at
 * the job's worker to its complete's (timed in the worker process), each
 * coordinator's CPU time, and the machine's busy time (/proc/stat). The
 * group leaders are read again after: a leader that changed during the
 * phase is reported.
 */
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { createCoordinatorClient, createQueryClient } from '../../src/client/index.js';
import { jobGroupOf } from '../../src/core/job-groups.js';
import { freePort } from '../../src/dev/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { processCpuMs } from '../wordcount-stack.js';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import { sourcesJob } from './bench-job.js';
import { startCoordinatorChild, type CoordinatorChild } from './coordinator-child.js';
import type { ScenarioContext } from './row.js';
import type { GroupsLatencies } from './groups-worker-child.js';
import { ATTACH_BATCH, allRunning } from './scale-many-jobs.js';
import type { ScaleAttach } from './scale-worker-child.js';

const GROUPS_WORKER_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'groups-worker-child.ts');
/** Coordinators start at once while waiting for every resignation takes this long at most (their start's limit is 30 s). */
const AT_ONCE_WAIT_MS = 10_000;
/** Time the coordinators have to lead one group each. */
const BALANCE_TIMEOUT_MS = 150_000;
/** Jobs submitted at once. */
const SUBMIT_BATCH = 20;
/** Checkpoint intervals left out after every job runs, before the measurement. */
const WARMUP_INTERVALS = 3;

/** What one phase runs. */
export interface PhasePlan {
  coordinators: number;
  /** `--job-groups`. */
  groups: number;
  jobsPerGroup: number;
  tasksPerJob: number;
  processesPerGroup: number;
  intervalMs: number;
  durationMs: number;
  /** `--lease-ttl-ms`: a coordinator over its share of groups resigns one after 2 × this (`group-balance.ts`). */
  leaseTtlMs: number;
}

/** One coordinator process of a phase, as measured. */
export interface CoordinatorSamples {
  address: string;
  /** Groups it led at the start of the measurement. */
  groupsLed: number[];
  jobsLed: number;
  /** Trigger to complete of its groups' checkpoints, ms. */
  commitMs: number[];
  /** Its CPU time over the measurement, ms. */
  cpuMs: number;
}

/** What a phase measured. */
export interface PhaseSamples {
  plan: PhasePlan;
  coordinators: CoordinatorSamples[];
  /** Every checkpoint, trigger to complete, ms. */
  commitMs: number[];
  /** The measurement's length, ms. */
  phaseMs: number;
  /** Leader of each group at the start and at the end of the measurement. */
  leadersBefore: string[];
  leadersAfter: string[];
  /** The machine's busy time over the measurement ÷ its wall time × cores: 1 is every core busy. */
  machineBusy: number;
  /** etcd's and NATS's CPU time over the measurement, ms, when their process ids are known. */
  serversCpuMs: number | undefined;
  /** Sessions of simulated workers that ended (and attached again) during the measurement. */
  sessionsEnded: number;
  /** The worker processes' CPU time over the measurement, ms. */
  workersCpuMs: number;
  /** 1-minute load average at the start and at the end of the measurement. */
  loadBefore: number;
  loadAfter: number;
}

/** `perGroup` job ids in each of `groups` groups, all of one length, group by group. */
export function jobIdsByGroup(groups: number, perGroup: number): string[][] {
  const byGroup = Array.from({ length: groups }, (): string[] => []);
  for (let i = 0; byGroup.some((ids) => ids.length < perGroup); i++) {
    const id = `g${String(i).padStart(6, '0')}`;
    const ids = byGroup[jobGroupOf(id, groups)]!;
    if (ids.length < perGroup) ids.push(id);
  }
  return byGroup;
}

/** Runs one phase under `prefix` (the etcd prefix and subject prefix of its coordinators). */
export async function runPhase(ctx: ScenarioContext, plan: PhasePlan, prefix: string): Promise<PhaseSamples> {
  const nodes = await startCoordinators(ctx, plan, prefix);
  const children: BenchChild[] = [];
  const addresses = nodes.map((n) => n.child.address);
  const client = createCoordinatorClient(addresses);
  const query = createQueryClient(addresses);
  try {
    const leaders = await balancedLeaders(nodes, plan.groups);
    ctx.log(`${plan.coordinators} coordinator(s), ${plan.groups} group(s); leaders ${describeLeaders(leaders)}`);
    const idsByGroup = jobIdsByGroup(plan.groups, plan.jobsPerGroup);
    const specsByGroup = idsByGroup.map((ids) =>
      ids.map((jobId) => sourcesJob(jobId, plan.tasksPerJob, { intervalMs: plan.intervalMs })),
    );
    const specs = specsByGroup.flat();
    for (let at = 0; at < specs.length; at += SUBMIT_BATCH)
      await Promise.all(specs.slice(at, at + SUBMIT_BATCH).map((spec) => client.submitJob({ spec })));
    // Process p hosts jobs of group p mod groups only.
    const processes = plan.groups * plan.processesPerGroup;
    for (let p = 0; p < processes; p++)
      children.push(forkBenchChild(`groups worker process ${p}`, GROUPS_WORKER_CHILD));
    const groupOf = (p: number): number => p % plan.groups;
    const specsOf = (p: number): JobSpec[] =>
      (specsByGroup[groupOf(p)] ?? []).filter((_s, i) => i % plan.processesPerGroup === Math.floor(p / plan.groups));
    await Promise.all(
      children.map(async (child, p) => {
        const own = specsOf(p);
        const leader = leaders[groupOf(p)] ?? '';
        const coordinator = [leader, ...addresses.filter((a) => a !== leader)].join(',');
        for (let at = 0; at < own.length; at += ATTACH_BATCH) {
          const attach: ScaleAttach = {
            coordinator,
            nats: ctx.nats,
            subjectPrefix: prefix,
            workers: own.slice(at, at + ATTACH_BATCH).map((spec) => ({
              spec,
              workerId: `groups-${spec.jobId}`,
              taskIds: (spec.tasks ?? []).map((t) => t.taskId ?? ''),
            })),
            timeCheckpoints: true,
          };
          await child.request<void>({ kind: 'attach', ...attach });
        }
      }),
    );
    await allRunning(query, specs.length, plan.tasksPerJob);
    ctx.log(`${specs.length} jobs of ${plan.tasksPerJob} tasks running in ${processes} worker process(es)`);
    await delay(WARMUP_INTERVALS * plan.intervalMs);
    return await measure(ctx, plan, { nodes, children, groupOf });
  } finally {
    client.close();
    query.close();
    await Promise.all(children.map((child) => child.request<void>({ kind: 'close' }).catch(() => undefined)));
    await Promise.all(children.map((child) => child.stop()));
    await Promise.all(nodes.map((n) => n.child.stop()));
  }
}

/** A coordinator process and its HTTP port. */
interface Node {
  child: CoordinatorChild;
  http: string;
}

/**
 * Starts the phase's coordinators; each start resolves once that
 * coordinator leads some group. A newcomer may wait for resignations of
 * coordinators over their share, each after 2 × the lease TTL: with a
 * short lease they start at once, else one after the other, so that each
 * waits for one resignation only and fits the start's time limit.
 */
async function startCoordinators(ctx: ScenarioContext, plan: PhasePlan, prefix: string): Promise<Node[]> {
  const startOne = async (): Promise<Node> => {
    const http = `127.0.0.1:${await freePort()}`;
    const flags = ['--job-groups', String(plan.groups), '--lease-ttl-ms', String(plan.leaseTtlMs)];
    const child = await startCoordinatorChild({
      etcd: ctx.etcd,
      nats: ctx.nats,
      prefix,
      flags: [...flags, '--http-listen', http],
    });
    return { child, http };
  };
  const nodes: Node[] = [];
  try {
    if (2 * plan.coordinators * plan.leaseTtlMs <= AT_ONCE_WAIT_MS) {
      const started = await Promise.allSettled(Array.from({ length: plan.coordinators }, startOne));
      for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } else {
      for (let i = 0; i < plan.coordinators; i++) nodes.push(await startOne());
    }
    return nodes;
  } catch (err) {
    await Promise.all(nodes.map((n) => n.child.stop()));
    throw err;
  }
}

/** What `/api/v1/cluster` shows of a process (`ClusterView` as `dashboard-json.ts` writes it), as far as read here. */
interface Cluster {
  self: string;
  leader?: string;
  job_groups?: Array<{ group: number; leader?: string }>;
}

/** Each group's leader as every process sees it; undefined unless all agree and know every group's leader. */
async function leadersSeen(nodes: readonly Node[], groups: number): Promise<string[] | undefined> {
  const views = await Promise.all(
    nodes.map(async (n) => {
      const response = await fetch(`http://${n.http}/api/v1/cluster`, { signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`GET http://${n.http}/api/v1/cluster: ${response.status}`);
      return (await response.json()) as Cluster;
    }),
  );
  const leadersOf = (v: Cluster): Array<string | undefined> =>
    groups === 1
      ? [v.leader]
      : Array.from({ length: groups }, (_, g) => v.job_groups?.find((x) => x.group === g)?.leader);
  const first = views[0] === undefined ? [] : leadersOf(views[0]);
  if (first.some((l) => l === undefined)) return undefined;
  if (!views.every((v) => leadersOf(v).join(',') === first.join(','))) return undefined;
  return first as string[];
}

/** Waits until every process sees every group led, and as evenly as the processes allow: the leaders. */
async function balancedLeaders(nodes: readonly Node[], groups: number): Promise<string[]> {
  const share = Math.ceil(groups / nodes.length);
  const until = Date.now() + BALANCE_TIMEOUT_MS;
  let seen: string[] | undefined;
  for (;;) {
    seen = await leadersSeen(nodes, groups).catch(() => undefined);
    const counts = nodes.map((n) => seen?.filter((l) => l === n.child.address).length ?? 0);
    if (seen !== undefined && counts.every((c) => c <= share)) return seen;
    if (Date.now() > until) {
      throw new Error(
        `the ${groups} job group(s) not shared by the ${nodes.length} coordinator(s) within ` +
          `${BALANCE_TIMEOUT_MS} ms; leaders seen: ${seen === undefined ? 'not agreed' : describeLeaders(seen)}`,
      );
    }
    await delay(250);
  }
}

/** "group 0 → 127.0.0.1:1234, …". */
export function describeLeaders(leaders: readonly string[]): string {
  return leaders.map((l, g) => `group ${g} → ${l}`).join(', ');
}

/** Busy and total clock ticks of every core so far, from /proc/stat. */
async function machineTicks(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total };
}

async function serversCpuMs(ctx: ScenarioContext): Promise<number | undefined> {
  const pids = ctx.serverPids;
  if (pids === undefined) return undefined;
  return (await processCpuMs(pids.etcd)) + (await processCpuMs(pids.nats));
}

interface Running {
  nodes: readonly Node[];
  children: readonly BenchChild[];
  groupOf(p: number): number;
}

async function measure(ctx: ScenarioContext, plan: PhasePlan, r: Running): Promise<PhaseSamples> {
  const leadersBefore = (await leadersSeen(r.nodes, plan.groups)) ?? [];
  const workersBefore = await Promise.all(
    r.children.map((child) => child.request<GroupsLatencies>({ kind: 'latencies' })),
  );
  const cpuBefore = await Promise.all(r.nodes.map((n) => processCpuMs(n.child.pid)));
  const serversBefore = await serversCpuMs(ctx);
  const ticksBefore = await machineTicks();
  const loadBefore = loadavg()[0] ?? 0;
  const startedAt = Date.now();
  await delay(plan.durationMs);
  const cpuAfter = await Promise.all(r.nodes.map((n) => processCpuMs(n.child.pid)));
  const serversAfter = await serversCpuMs(ctx);
  const ticksAfter = await machineTicks();
  const phaseMs = Date.now() - startedAt;
  const loadAfter = loadavg()[0] ?? 0;
  const taken = await Promise.all(r.children.map((child) => child.request<GroupsLatencies>({ kind: 'latencies' })));
  const leadersAfter = (await leadersSeen(r.nodes, plan.groups).catch(() => undefined)) ?? [];
  const coordinators = r.nodes.map((n, i): CoordinatorSamples => {
    const groupsLed = leadersBefore.flatMap((l, g) => (l === n.child.address ? [g] : []));
    return {
      address: n.child.address,
      groupsLed,
      jobsLed: groupsLed.length * plan.jobsPerGroup,
      commitMs: taken.flatMap((t, p) => (groupsLed.includes(r.groupOf(p)) ? t.checkpoints : [])),
      cpuMs: (cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0),
    };
  });
  const ticks = ticksAfter.total - ticksBefore.total;
  return {
    plan,
    coordinators,
    commitMs: taken.flatMap((t) => t.checkpoints),
    phaseMs,
    leadersBefore,
    leadersAfter,
    machineBusy: ticks > 0 ? (ticksAfter.busy - ticksBefore.busy) / ticks : NaN,
    serversCpuMs: serversBefore === undefined || serversAfter === undefined ? undefined : serversAfter - serversBefore,
    sessionsEnded: taken.reduce((sum, t) => sum + t.sessionsEnded, 0),
    workersCpuMs: taken.reduce((sum, t, p) => sum + t.cpuMs - (workersBefore[p]?.cpuMs ?? 0), 0),
    loadBefore,
    loadAfter,
  };
}
