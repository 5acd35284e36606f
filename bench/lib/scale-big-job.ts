/**
 * The scale scenario's first part: one job of many source tasks in many
 * worker processes, one simulated worker each (`scale-worker-child.ts`).
 * Checkpoints are triggered one after the other and timed from the
 * coordinator's PENDING event to its COMPLETED event; after each, one
 * floor round (`scale-floor-child.ts`) does the same work on the bare
 * systems. The coordinator's resident memory is sampled throughout. Then
 * one worker process at a time is SIGKILLed, and a warm spare process
 * attaches the same tasks under the same worker id; detection (the
 * coordinator's "worker detached" line) to every task ready (its "every
 * task ready: job started" line of the next epoch) is read from the
 * coordinator's log.
 */
import { copyFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCoordinatorClient, type CoordinatorClient } from '../../src/client/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { processCpuMs } from '../wordcount-stack.js';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import { sourcesJob, timedCheckpoint, waitRunning } from './bench-job.js';
import { CheckpointWatch } from './checkpoint-watch.js';
import { startCoordinatorChild, type CoordinatorChild } from './coordinator-child.js';
import type { CommitSizes, ScaleFloorStart, ScaleRound, ScaleRoundTimes } from './scale-floor-child.js';
import { LONG_DEADLINE_MS } from './scale-plan.js';
import type { AckSizes, ScaleAttach, ScaleFloorEnd } from './scale-worker-child.js';
import { split } from './worker-pool.js';
import type { ScenarioContext } from './row.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const SCALE_WORKER_CHILD = join(HERE, 'scale-worker-child.ts');
export const SCALE_FLOOR_CHILD = join(HERE, 'scale-floor-child.ts');

/** How long the job has to recover after a kill. */
const RECOVERY_TIMEOUT_MS = 60_000;
/** How often the coordinator's memory is read. */
const RSS_SAMPLE_MS = 200;
/**
 * The coordinator's heartbeat timeout (its default is 10 s). Sixteen
 * worker processes and the coordinator share two cores: while the workers
 * build their acknowledgements of 100,000 tasks the coordinator gets a
 * small share of them, and a worker's heartbeats wait unread behind the
 * acknowledgements queued before them for longer than 10 s, so the
 * coordinator judged a live worker silent and aborted the checkpoint. The
 * recoveries measured here start from a killed process's closed
 * connection, which the coordinator sees at once, not from a timeout.
 */
export const BIG_JOB_HEARTBEAT_TIMEOUT_MS = 30_000;

/** What part one runs. */
export interface BigJobPlan {
  tasks: number;
  processes: number;
  warmup: number;
  checkpoints: number;
  kills: number;
  /** Extra `ckpt coordinator` flags. Default: none. */
  coordinatorFlags?: readonly string[];
}

/** What part one measured. */
export interface BigJobSamples {
  plan: BigJobPlan;
  /** PENDING to COMPLETED, ms. */
  latencyMs: number[];
  /** The TriggerCheckpoint(wait) call, ms. */
  callMs: number[];
  floor: ScaleRoundTimes[];
  /** Per checkpoint, every process's acknowledgement messages. */
  acks: AckSizes[][];
  /** The coordinator's largest resident set seen (VmHWM at the end), bytes. */
  peakRssBytes: number;
  /** Its resident set after the checkpoints, bytes. */
  rssAfterBytes: number;
  /** The coordinator's CPU time (user and system) over the checkpoints, ms. */
  cpuMs: number;
  /** Per kill: detection to every task ready, the kill to every task ready, detection to the restore sent, ms. */
  recoveries: Array<{
    detectionToReadyMs: number;
    killToReadyMs: number;
    detectionToRestoreMs: number;
    /** Detection to the spare's session opened ("worker attached"). */
    detectionToAttachMs: number;
  }>;
  /** From the first hello to every task running, ms. */
  attachMs: number;
  /** Manifest sizes the coordinator committed (from the last captured commit), bytes. */
  commit: CommitSizes | undefined;
}

interface Fixture {
  ctx: ScenarioContext;
  coordinator: CoordinatorChild;
  client: CoordinatorClient;
  children: BenchChild[];
  spares: BenchChild[];
  floor: BenchChild;
  spec: JobSpec;
  slices: string[][];
  dirs: { from: string; to: string };
  /** Where each worker process's floor end connects, once the floor runs. */
  floorEnd?: ScaleFloorEnd;
  /** The job's checkpoint events. */
  watch?: CheckpointWatch;
}

/** Runs part one with `plan` and returns its samples. */
export async function runBigJob(ctx: ScenarioContext, plan: BigJobPlan): Promise<BigJobSamples> {
  const prefixes = { coordinator: `${ctx.prefix}-c`, floor: `${ctx.prefix}-f` };
  const coordinator = await startCoordinatorChild({
    etcd: ctx.etcd,
    nats: ctx.nats,
    prefix: prefixes.coordinator,
    flags: ['--heartbeat-timeout-ms', String(BIG_JOB_HEARTBEAT_TIMEOUT_MS), ...(plan.coordinatorFlags ?? [])],
  });
  const client = createCoordinatorClient(coordinator.address);
  const children = Array.from({ length: plan.processes }, (_, i) =>
    forkBenchChild(`scale worker process ${i}`, SCALE_WORKER_CHILD),
  );
  const spares = Array.from({ length: plan.kills }, (_, i) =>
    forkBenchChild(`scale spare process ${i}`, SCALE_WORKER_CHILD),
  );
  const floor = forkBenchChild('scale floor', SCALE_FLOOR_CHILD);
  const rss = new RssSampler(coordinator.pid);
  let watch: CheckpointWatch | undefined;
  try {
    const jobId = 'big';
    const spec = sourcesJob(jobId, plan.tasks);
    const taskIds = (spec.tasks ?? []).map((t) => t.taskId ?? '');
    const slices = split(taskIds, plan.processes);
    const dirs = { from: `/${prefixes.coordinator}/jobs/${jobId}/`, to: `/${prefixes.floor}/jobs/${jobId}/` };
    const fixture: Fixture = { ctx, coordinator, client, children, spares, floor, spec, slices, dirs };
    await startFloor(fixture, prefixes);
    const submitStarted = Date.now();
    await client.submitJob({ spec }, { deadlineMs: LONG_DEADLINE_MS });
    ctx.log(`job of ${plan.tasks} tasks submitted in ${Date.now() - submitStarted} ms`);
    // Opened before the first trigger: events of checkpoints triggered before the stream is up are missed.
    watch = new CheckpointWatch(coordinator.address, jobId);
    fixture.watch = watch;
    const attachStarted = Date.now();
    await Promise.all(children.map((child, i) => attachSlice(fixture, child, i)));
    // From the log, not by polling GetJob: each answer carries the spec (1 MB at 100,000 tasks), which this
    // process would decode every few ms on the cores the coordinator runs on.
    await waitLog(
      coordinator.logFile,
      (l) => l.msg === 'every task ready: job started' && l.jobId === jobId,
      `job ${jobId} started`,
    );
    await waitRunning(client, jobId, plan.tasks);
    const attachMs = Date.now() - attachStarted;
    ctx.log(`job of ${plan.tasks} tasks running in ${plan.processes} worker processes after ${attachMs} ms`);
    const cpuBefore = await processCpuMs(coordinator.pid);
    const samples = await checkpoints(fixture, plan);
    samples.cpuMs = (await processCpuMs(coordinator.pid)) - cpuBefore;
    samples.attachMs = attachMs;
    samples.rssAfterBytes = await rssBytes(coordinator.pid, 'VmRSS');
    samples.recoveries = await recoveries(fixture, plan);
    samples.peakRssBytes = Math.max(rss.peak, await rssBytes(coordinator.pid, 'VmHWM'));
    return samples;
  } catch (err) {
    // The coordinator's log goes with it when it stops: a failed run keeps a copy, and says where.
    const kept = join(tmpdir(), `ckpt-scale-coordinator-${Date.now()}.log`);
    await copyFile(coordinator.logFile, kept).catch(() => {});
    throw new Error(`${err instanceof Error ? err.message : String(err)} (coordinator log: ${kept})`, { cause: err });
  } finally {
    watch?.close();
    rss.stop();
    client.close();
    await coordinator.stop();
    await Promise.all([...children, ...spares, floor].map((child) => child.stop()));
  }
}

async function startFloor(f: Fixture, prefixes: { coordinator: string; floor: string }): Promise<void> {
  const start: ScaleFloorStart = {
    nats: f.ctx.nats,
    etcd: f.ctx.etcd,
    floorPrefix: `/${prefixes.floor}/`,
    subject: `${prefixes.floor}.floor`,
  };
  const address = await f.floor.request<string>({ kind: 'start', ...start });
  await f.floor.request<void>({ kind: 'watch', prefix: f.dirs.from });
  const end: ScaleFloorEnd = {
    nats: f.ctx.nats,
    address,
    subject: start.subject,
    indexOf: { [f.spec.jobId ?? '']: 0 },
    messageBytes: [],
    timeRounds: false,
  };
  // Each process connects its floor end once its worker is attached: the spares' too, as they take over.
  f.floorEnd = end;
}

async function attachSlice(f: Fixture, child: BenchChild, slot: number, staged = false): Promise<void> {
  if (staged) await child.request<void>({ kind: 'attachStaged' });
  else await child.request<void>({ kind: 'attach', ...sliceAttach(f, slot) });
  if (f.floorEnd !== undefined) await child.request<void>({ kind: 'floor', ...f.floorEnd });
}

/** What process `slot` attaches: its slice of the tasks under its worker id. */
function sliceAttach(f: Fixture, slot: number): ScaleAttach {
  return {
    coordinator: f.coordinator.address,
    nats: f.ctx.nats,
    subjectPrefix: `${f.ctx.prefix}-c`,
    workers: [{ spec: f.spec, workerId: `scale-worker-${slot}`, taskIds: f.slices[slot] ?? [] }],
    timeCheckpoints: false,
  };
}

async function checkpoints(f: Fixture, plan: BigJobPlan): Promise<BigJobSamples> {
  const jobId = f.spec.jobId ?? '';
  const watch = f.watch;
  if (watch === undefined) throw new Error('the checkpoint watch was not opened');
  const samples: BigJobSamples = {
    plan,
    latencyMs: [],
    callMs: [],
    floor: [],
    acks: [],
    peakRssBytes: 0,
    rssAfterBytes: 0,
    cpuMs: 0,
    recoveries: [],
    commit: undefined,
    attachMs: 0,
  };
  {
    for (let i = 0; i < plan.warmup + plan.checkpoints; i++) {
      const { ms, summary } = await timedCheckpoint(f.client, jobId);
      const latencyMs = await watch.durationOf(summary.checkpointId);
      const acks = await Promise.all(
        f.children.map((child) =>
          child.request<AckSizes>({ kind: 'prepare', jobId, checkpointId: summary.checkpointId }),
        ),
      );
      const round: ScaleRound = {
        jobId,
        checkpointId: summary.checkpointId,
        epoch: summary.epoch,
        index: 0,
        messages: acks.reduce((sum, a) => sum + a.messageBytes.length, 0),
        ...f.dirs,
      };
      const times = await f.floor.request<ScaleRoundTimes & { commit: CommitSizes }>({
        kind: 'round',
        ...round,
      });
      samples.commit = times.commit;
      f.ctx.log(
        `checkpoint ${summary.checkpointId}: ${latencyMs.toFixed(0)} ms (workers: first ack accepted ` +
          `${Math.min(...acks.map((a) => a.firstAckMs)).toFixed(0)} ms, last ` +
          `${Math.max(...acks.map((a) => a.workerMs)).toFixed(0)} ms); floor ${times.ms.toFixed(0)} ms ` +
          `(answers ${times.fanOutMs.toFixed(0)} ms, etcd ${times.etcdMs.toFixed(0)} ms)`,
      );
      if (i < plan.warmup) continue;
      samples.latencyMs.push(latencyMs);
      samples.callMs.push(ms);
      samples.floor.push(times);
      samples.acks.push(acks);
    }
    return samples;
  }
}

/** One JSON log line of the coordinator, the fields read here. */
interface LogLine {
  time: number;
  msg: string;
  jobId?: string;
  workerId?: string;
  epoch?: number;
}

async function readLog(file: string): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  for (const text of (await readFile(file, 'utf8')).split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text) as LogLine;
      if (typeof line.time === 'number' && typeof line.msg === 'string') lines.push(line);
    } catch {
      // A line being written: read at the next poll.
    }
  }
  return lines;
}

async function waitLog(file: string, match: (line: LogLine) => boolean, what: string): Promise<LogLine> {
  const until = Date.now() + RECOVERY_TIMEOUT_MS;
  for (;;) {
    const found = (await readLog(file)).find(match);
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error(`no coordinator log line: ${what} within ${RECOVERY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Kills one worker process at a time; a warm spare attaches its tasks under its worker id. */
async function recoveries(f: Fixture, plan: BigJobPlan): Promise<BigJobSamples['recoveries']> {
  const jobId = f.spec.jobId ?? '';
  const out: BigJobSamples['recoveries'] = [];
  let epoch = (await f.client.getJob({ jobId })).job?.epoch ?? 1;
  for (let k = 0; k < plan.kills; k++) {
    const slot = k % plan.processes;
    const spare = f.spares[k];
    if (spare === undefined) break;
    const workerId = `scale-worker-${slot}`;
    // A warm spare: it knows its tasks and is connected; it says hello once the process it replaces is gone.
    await spare.request<void>({ kind: 'stage', ...sliceAttach(f, slot) });
    const killedAt = Date.now();
    await f.children[slot]?.kill();
    const attached = attachSlice(f, spare, slot, true);
    const ready = await waitLog(
      f.coordinator.logFile,
      (l) => l.msg === 'every task ready: job started' && l.jobId === jobId && (l.epoch ?? 0) > epoch,
      `job ${jobId} ready in an epoch after ${epoch}`,
    );
    await attached;
    const lines = await readLog(f.coordinator.logFile);
    const detached = lines.find(
      (l) => l.msg === 'worker detached' && l.workerId === workerId && l.time >= killedAt - 5 && l.time <= ready.time,
    );
    const restored = lines.find(
      (l) => l.msg === 'job recovery: every task restores' && l.jobId === jobId && l.epoch === ready.epoch,
    );
    if (detached === undefined) throw new Error(`no "worker detached" line for ${workerId} after the kill`);
    const reattached = lines.find(
      (l) => l.msg === 'worker attached' && l.workerId === workerId && l.time >= detached.time && l.time <= ready.time,
    );
    f.children[slot] = spare;
    epoch = ready.epoch ?? epoch + 1;
    const figures = {
      detectionToReadyMs: ready.time - detached.time,
      killToReadyMs: ready.time - killedAt,
      detectionToRestoreMs: restored === undefined ? Number.NaN : restored.time - detached.time,
      detectionToAttachMs: reattached === undefined ? Number.NaN : reattached.time - detached.time,
    };
    out.push(figures);
    f.ctx.log(
      `kill ${k + 1} (process ${slot}): detection to ready ${figures.detectionToReadyMs} ms (spare attached after ` +
        `${figures.detectionToAttachMs} ms), kill to ready ${figures.killToReadyMs} ms`,
    );
  }
  return out;
}

/** `VmRSS` or `VmHWM` of `pid`, in bytes; 0 when /proc cannot tell. */
export async function rssBytes(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** Reads a process's resident set every 200 ms and keeps the largest. */
export class RssSampler {
  peak = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(pid: number) {
    this.#timer = setInterval(() => {
      void rssBytes(pid, 'VmRSS').then((bytes) => (this.peak = Math.max(this.peak, bytes)));
    }, RSS_SAMPLE_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
