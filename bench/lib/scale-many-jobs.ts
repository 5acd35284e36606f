/**
 * The scale scenario's second part: many small jobs on one coordinator,
 * each checkpointing at a fixed interval, their simulated workers spread
 * over the worker processes (`scale-worker-child.ts`). Each checkpoint is
 * timed in its worker, from the trigger's arrival to the complete
 * broadcast's; the coordinator's CPU time over the phase is divided by the
 * checkpoints completed. Then, with the coordinator stopped, the floor
 * (`scale-floor-child.ts`) runs the same number of jobs at the same
 * interval on the bare systems for as long: each round a trigger to the
 * job's worker process, its answer on a bare gRPC stream of the bytes a
 * simulated worker sends to acknowledge, one etcd transaction of the keys
 * and values the coordinator committed for one of these checkpoints, and a
 * complete, timed in the worker process the same way.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { createCoordinatorClient, createQueryClient, type QueryClient } from '../../src/client/index.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { codec } from '../../src/proto/index.js';
import { simulatedSnapshot } from '../../test/sim/index.js';
import { processCpuMs } from '../wordcount-stack.js';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import { sourcesJob } from './bench-job.js';
import { busyShare, machineCpu } from './system.js';
import { startCoordinatorChild } from './coordinator-child.js';
import type { ScenarioContext } from './row.js';
import { RssSampler, SCALE_FLOOR_CHILD, SCALE_WORKER_CHILD } from './scale-big-job.js';
import type { CommitSizes, ScaleFloorStart, ScaleLoad, ScaleLoadOutcome } from './scale-floor-child.js';
import type { ScaleAttach, ScaleFloorEnd, ScaleLatencies } from './scale-worker-child.js';

/** Time every job has to run with all its tasks. */
const RUNNING_TIMEOUT_MS = 120_000;
/** Jobs attached by one worker process at once. */
export const ATTACH_BATCH = 25;

/** What part two runs. */
export interface ManyJobsPlan {
  jobs: number;
  tasksPerJob: number;
  processes: number;
  intervalMs: number;
  /** Each phase (ckpt, then the floor) runs this long once every job runs. */
  durationMs: number;
}

/** What part two measured. */
export interface ManyJobsSamples {
  plan: ManyJobsPlan;
  /** Trigger to complete, per checkpoint, in the workers, ms. */
  commitMs: number[];
  floorMs: number[];
  /** Coordinator CPU time over the phase, ms. */
  cpuMs: number;
  /** The phase's length, ms. */
  phaseMs: number;
  /** How busy the machine and the benchmark's processes were over the ckpt phase, and over the floor's. */
  load: { ckpt: PhaseLoad; floor: PhaseLoad };
  peakRssBytes: number;
  floorOutcome: ScaleLoadOutcome;
  sample: CommitSizes;
  ackBytes: number;
}

/** Runs part two with `plan`. */
export async function runManyJobs(ctx: ScenarioContext, plan: ManyJobsPlan): Promise<ManyJobsSamples> {
  // Equal lengths: the floor's job directories are the coordinator's, byte for byte, under another prefix.
  const prefixes = { coordinator: `${ctx.prefix}-m`, floor: `${ctx.prefix}-n` };
  const jobIds = Array.from({ length: plan.jobs }, (_, i) => `s${String(i).padStart(5, '0')}`);
  const specs = jobIds.map((jobId) => sourcesJob(jobId, plan.tasksPerJob, { intervalMs: plan.intervalMs }));
  const children = Array.from({ length: plan.processes }, (_, i) =>
    forkBenchChild(`scale worker process ${i}`, SCALE_WORKER_CHILD),
  );
  const floor = forkBenchChild('scale floor', SCALE_FLOOR_CHILD);
  const byProcess = children.map((_, p) => specs.filter((_s, i) => i % plan.processes === p));
  try {
    const start: ScaleFloorStart = {
      nats: ctx.nats,
      etcd: ctx.etcd,
      floorPrefix: `/${prefixes.floor}/`,
      subject: `${prefixes.floor}.floor`,
    };
    const floorAddress = await floor.request<string>({ kind: 'start', ...start });
    const ckpt = await ckptPhase(ctx, plan, prefixes.coordinator, { specs, children, byProcess, floor });
    ctx.log(`ckpt: ${ckpt.commitMs.length} checkpoints completed in ${(ckpt.phaseMs / 1000).toFixed(0)} s`);
    const ackBytes = ackMessageBytes(specs[0]!);
    const end = (p: number): ScaleFloorEnd => ({
      nats: ctx.nats,
      address: floorAddress,
      subject: start.subject,
      indexOf: Object.fromEntries(
        byProcess[p]!.map((spec): [string, number] => [spec.jobId ?? '', jobIds.indexOf(spec.jobId ?? '')]),
      ),
      messageBytes: [ackBytes],
      timeRounds: true,
    });
    await Promise.all(children.map((child, p) => child.request<void>({ kind: 'floor', ...end(p) })));
    const load: ScaleLoad = {
      dirs: jobIds.map((jobId) => `/${prefixes.floor}/jobs/${jobId}/`),
      from: `/${prefixes.coordinator}/jobs/${jobIds[0]}/`,
      intervalMs: plan.intervalMs,
      durationMs: plan.durationMs,
      messages: 1,
    };
    const floorLoad = await measurePhaseLoad(ctx, [...children, floor]);
    const floorOutcome = await floor.request<ScaleLoadOutcome>({ kind: 'load', ...load });
    const loads = { ckpt: ckpt.load, floor: await floorLoad() };
    const taken = await Promise.all(children.map((child) => child.request<ScaleLatencies>({ kind: 'latencies' })));
    const floorMs = taken.flatMap((t) => t.floorRounds);
    ctx.log(`floor: ${floorOutcome.rounds} rounds (${floorOutcome.skipped} skipped, ${floorOutcome.failed} failed)`);
    for (const [message, count] of Object.entries(floorOutcome.failures)) ctx.log(`floor: ${count} failed: ${message}`);
    return { plan, ...ckpt, floorMs, floorOutcome, ackBytes, load: loads };
  } finally {
    await Promise.all([...children, floor].map((child) => child.stop()));
  }
}

interface Processes {
  specs: JobSpec[];
  children: BenchChild[];
  byProcess: JobSpec[][];
  floor: BenchChild;
}

/** The jobs on a coordinator: submitted, attached, measured for `durationMs`; the coordinator stops after. */
async function ckptPhase(
  ctx: ScenarioContext,
  plan: ManyJobsPlan,
  prefix: string,
  p: Processes,
): Promise<Omit<ManyJobsSamples, 'plan' | 'floorMs' | 'floorOutcome' | 'ackBytes' | 'load'> & { load: PhaseLoad }> {
  const coordinator = await startCoordinatorChild({ etcd: ctx.etcd, nats: ctx.nats, prefix });
  const client = createCoordinatorClient(coordinator.address);
  const query = createQueryClient(coordinator.address);
  const rss = new RssSampler(coordinator.pid);
  try {
    for (const spec of p.specs) await client.submitJob({ spec });
    await Promise.all(
      p.children.map(async (child, i) => {
        const specs = p.byProcess[i] ?? [];
        for (let at = 0; at < specs.length; at += ATTACH_BATCH) {
          const attach: ScaleAttach = {
            coordinator: coordinator.address,
            nats: ctx.nats,
            subjectPrefix: prefix,
            workers: specs.slice(at, at + ATTACH_BATCH).map((spec) => ({
              spec,
              workerId: `scale-${spec.jobId}`,
              taskIds: (spec.tasks ?? []).map((t) => t.taskId ?? ''),
            })),
            timeCheckpoints: true,
          };
          await child.request<void>({ kind: 'attach', ...attach });
        }
      }),
    );
    await allRunning(query, plan.jobs, plan.tasksPerJob);
    ctx.log(`${plan.jobs} jobs of ${plan.tasksPerJob} tasks running in ${plan.processes} worker processes`);
    await p.floor.request<void>({ kind: 'watch', prefix: `/${prefix}/jobs/${p.specs[0]?.jobId}/` });
    const sample = await p.floor.request<CommitSizes>({ kind: 'sample', jobId: p.specs[0]?.jobId });
    await Promise.all(p.children.map((child) => child.request<ScaleLatencies>({ kind: 'latencies' })));
    const phaseLoad = await measurePhaseLoad(ctx, p.children, coordinator.pid);
    const cpuBefore = await processCpuMs(coordinator.pid);
    const startedAt = Date.now();
    await delay(plan.durationMs);
    const cpuMs = (await processCpuMs(coordinator.pid)) - cpuBefore;
    const load = await phaseLoad();
    const phaseMs = Date.now() - startedAt;
    const taken = await Promise.all(p.children.map((child) => child.request<ScaleLatencies>({ kind: 'latencies' })));
    const commitMs = taken.flatMap((t) => t.checkpoints);
    return { commitMs, cpuMs, phaseMs, peakRssBytes: rss.peak, sample, load };
  } finally {
    rss.stop();
    client.close();
    query.close();
    await coordinator.stop();
    // The simulated workers go with their sessions; the processes stay for the floor.
    await Promise.all(p.children.map((child) => child.request<void>({ kind: 'close' })));
  }
}

/** How busy the machine, and the benchmark's own processes, were over a phase. */
export interface PhaseLoad {
  /** The share of the machine's CPU (every core, /proc/stat) busy, 0 to 1: other work on the machine counts too. */
  machineBusy: number;
  /**
   * The CPU time of the phase's processes (etcd, the NATS server, the worker processes, and the floor's process or
   * the coordinator) per second of the phase: cores in use; undefined when the servers' process ids are not known.
   */
  processCores: number | undefined;
}

/** Starts measuring a phase's load; the function returned ends the measurement. */
async function measurePhaseLoad(
  ctx: ScenarioContext,
  children: readonly BenchChild[],
  ...pids: number[]
): Promise<() => Promise<PhaseLoad>> {
  const servers = ctx.serverPids;
  const all = [...pids, ...children.map((c) => c.pid ?? 0)];
  const known = servers !== undefined && all.every((pid) => pid > 0);
  const measured = known ? [...all, servers.etcd, servers.nats] : [];
  const cpuMs = async (): Promise<number> =>
    (await Promise.all(measured.map((pid) => processCpuMs(pid)))).reduce((sum, ms) => sum + ms, 0);
  const [machineBefore, cpuBefore, from] = [await machineCpu(), await cpuMs(), performance.now()];
  return async () => {
    const [machineAfter, cpuAfter] = [await machineCpu(), await cpuMs()];
    const processCores = known ? (cpuAfter - cpuBefore) / (performance.now() - from) : undefined;
    return { machineBusy: busyShare(machineBefore, machineAfter), processCores };
  };
}

/** Resolves once `jobs` jobs run with all `tasks` attached (the listing pages through every job). */
export async function allRunning(client: QueryClient, jobs: number, tasks: number): Promise<void> {
  const until = Date.now() + RUNNING_TIMEOUT_MS;
  for (;;) {
    let running = 0;
    let pageToken = '';
    do {
      const page = await client.listJobs({ pageSize: 1000, pageToken });
      running += page.jobs.filter((job) => job.attempt === 'JOB_ATTEMPT_RUNNING' && job.attachedTasks === tasks).length;
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    if (running >= jobs) return;
    if (Date.now() > until) throw new Error(`only ${running} of ${jobs} jobs running after ${RUNNING_TIMEOUT_MS} ms`);
    await delay(250);
  }
}

/** Bytes of the session message with which a simulated worker acknowledges all of a job's tasks at once. */
function ackMessageBytes(spec: JobSpec): number {
  const jobId = spec.jobId ?? '';
  const checkpointId = 100;
  const snapshots = (spec.tasks ?? []).map((t) =>
    simulatedSnapshot({ jobId, taskId: t.taskId ?? '', checkpointId, stateBytes: 1024, source: true, alignmentMs: 0 }),
  );
  const message = { acknowledge: { requestId: checkpointId, epoch: 1, checkpointId, snapshots } };
  return codec<AttachRequest, unknown>('AttachRequest').encode(message).length;
}
