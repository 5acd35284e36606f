/**
 * Scenario 5, recovery: the word count scaled to 64 tasks in four worker
 * processes, with small state; one worker at a time is SIGKILLed. Two
 * ways, one after the other:
 *
 * - with standbys: next to each worker runs a standby worker process for
 *   the same tasks (`--standby`), which takes them over when the worker's
 *   session ends; the killed process is started again as the new standby;
 * - by restart: the killed worker is started again at once, and the job
 *   waits for that process. The restarts alternate between the two ways
 *   make build gives to start the bundled worker: from its V8 startup
 *   snapshot (`node --snapshot-blob worker.snapshot.blob`, the one held to
 *   the target) and from the bundle with its code cache, so that both are
 *   measured in the same run, under the same load.
 *
 * Reported: from the kill, and from the coordinator's detection (its
 * "worker detached" log line, when the session ends), to every task ready
 * in the new epoch (its "every task ready: job started" log line), by the
 * coordinator's timestamps. The coordinator and the workers run the
 * compiled JavaScript of dist/ with plain `node`, as a deployment does
 * (bench/lib/compiled-child.ts).
 *
 *   make build && node --import tsx bench/recovery.ts [--quick]
 */
import { loadavg } from 'node:os';
import { sentences } from '../examples/wordcount/corpus.js';
import { INPUT_STREAM, OUTPUT_STREAM, inputSubject, wordCountSpec, workerTasks } from '../examples/wordcount/job.js';
import type { ManagedChild } from '../test/chaos/child.js';
import { median, spread } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { coresText, type SystemFacts } from './lib/system.js';
import { isMain, runStandalone } from './standalone.js';
import {
  preloadInput,
  processCpuMs,
  startBenchStack,
  startWorkers,
  stopWorkers,
  type BenchCoordinator,
  type BenchStack,
  type LogEntry,
  type WorkerLaunch,
} from './wordcount-stack.js';

/** Target of the p50 from detection to every task ready again, with standbys: 64 tasks, small state. */
const DETECTION_TO_READY_TARGET_MS = 500;
/** Target of the p50 from the kill to every task ready again, by restart (the new process's start included). */
const RESTART_KILL_TO_READY_TARGET_MS = 300;

/** How the scenario runs. */
export interface RecoveryOptions {
  /** Kills with standbys, one at a time, each after the job has committed a checkpoint since the last. */
  kills: number;
  /** Kills followed by a restart of the killed process, likewise; the restarts alternate between the launches. */
  restartKills: number;
}

/** The full run's options. */
export const DEFAULT_RECOVERY_OPTIONS: RecoveryOptions = { kills: 12, restartKills: 16 };
/** A smoke run's options (`ctx.quick`). */
export const QUICK_RECOVERY_OPTIONS: RecoveryOptions = { kills: 2, restartKills: 4 };

/** 8 splits, 55 counts and the sink: 64 tasks. */
const SHAPE = { splits: 8, counts: 55 };
const WORKERS = 4;
/** Sentences stored before the job starts, so that every count holds a little state. */
const SENTENCES = 4000;
const INTERVAL_MS = 500;
const JOB_ID = 'recovery';
/** Longest the job may take to start, or to recover after a kill. */
const READY_TIMEOUT_MS = 60_000;

/** One kill's figures, in ms. */
interface KillFigures {
  killToReady: number;
  detectionToReady: number;
  /** Restarts: the new worker process's start to its session opened ("worker attached"). */
  restartToAttach: number;
  /**
   * Restarts: the CPU time (user and system, every thread) the new process
   * had used when every task was ready, read as the harness sees that log
   * line: what its start costs, whatever else the machine runs.
   */
  restartCpuMs?: number;
  /** The killed tasks' new session (the restarted process, or the standby promoted) to every task ready. */
  attachToReady: number;
  /** Detection to the new epoch stored, `recover` broadcast and restore commands issued to the live workers. */
  detectionToRestore: number;
  /** Restarts: how the new process started. */
  launch?: WorkerLaunch;
}

/** The restarts' launches, in the order they alternate: the first is the one held to the target. */
const LAUNCHES: readonly WorkerLaunch[] = ['snapshot', 'code-cache'];

/** Scenario 5 with `options`. */
export function recoveryScenario(options: RecoveryOptions): Scenario {
  return async (ctx) => {
    const stack = await startBenchStack(ctx, ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '3000']);
    const layout = workerTasks(SHAPE, WORKERS);
    const children: ManagedChild[] = [];
    try {
      const subjects = Array.from({ length: SHAPE.splits }, (_, i) => inputSubject(i));
      await preloadInput(stack.nc, sentences(SENTENCES), subjects);
      const withStandbys = await standbyPhase(ctx, stack, layout, options.kills, children);
      await stopWorkers(children.splice(0));
      const byRestart = await restartPhase(ctx, stack, layout, options.restartKills, children);
      const launched = (launch: WorkerLaunch): KillFigures[] => byRestart.filter((k) => k.launch === launch);
      return [
        ...rows('', withStandbys, layout, 'standby', ctx.system),
        ...rows('restart.', launched('snapshot'), layout, 'restart', ctx.system),
        ...rows('restart.code_cache.', launched('code-cache'), layout, 'restart', ctx.system),
      ];
    } finally {
      await stopWorkers(children);
      await stack.stop([INPUT_STREAM, OUTPUT_STREAM]);
    }
  };
}

/** Kills with a standby next to every worker: the standby takes over, the killed process becomes the new standby. */
async function standbyPhase(
  ctx: ScenarioContext,
  stack: BenchStack,
  layout: readonly (readonly string[])[],
  kills: number,
  children: ManagedChild[],
): Promise<KillFigures[]> {
  const jobId = `${JOB_ID}-standby`;
  const { coordinator } = stack;
  // Every process restarts as a standby; the first starts: the workers, then their standbys.
  const { workers: active, ready: started } = await startJob(ctx, stack, jobId, layout, children, {
    standby: 'on-restart',
  });
  let ready = started;
  const base = { coordinator, nats: ctx.nats, jobId, tasks: layout, stateDir: stack.stateDir };
  const waiting = startWorkers({ ...base, name: 'standby', standby: 'always' });
  children.push(...waiting);
  await standbysWaiting(coordinator, jobId, WORKERS, 0);
  ctx.log(`job ${jobId} running: 64 tasks in ${WORKERS} worker processes, a standby next to each`);
  const figures: KillFigures[] = [];
  for (let k = 0; k < kills; k++) {
    const slot = k % WORKERS;
    const victim = active[slot] as ManagedChild;
    const since = Date.now();
    const { figures: f, next } = await killOne(coordinator, jobId, victim, ready, 'standby promoted');
    figures.push(f);
    ready = next;
    // The standby now runs the slot; the killed process comes back as its standby.
    [active[slot], waiting[slot]] = [waiting[slot] as ManagedChild, victim];
    victim.start();
    await standbysWaiting(coordinator, jobId, 1, since);
    ctx.log(
      `standby kill ${k + 1} (slot ${slot}): kill to ready ${f.killToReady} ms, detection to ready ${f.detectionToReady} ms`,
    );
  }
  await coordinator.client.cancelJob({ jobId });
  return figures;
}

/**
 * Kills without standbys: the killed process is started again and the job
 * waits for it; the restarts alternate between `LAUNCHES`.
 */
async function restartPhase(
  ctx: ScenarioContext,
  stack: BenchStack,
  layout: readonly (readonly string[])[],
  kills: number,
  children: ManagedChild[],
): Promise<KillFigures[]> {
  const jobId = `${JOB_ID}-restart`;
  const { coordinator } = stack;
  let launch = LAUNCHES[0] as WorkerLaunch;
  const { workers, ready: started } = await startJob(ctx, stack, jobId, layout, children, { launch: () => launch });
  let ready = started;
  ctx.log(`job ${jobId} running: 64 tasks in ${WORKERS} worker processes, no standbys`);
  const figures: KillFigures[] = [];
  for (let k = 0; k < kills; k++) {
    const worker = workers[k % WORKERS] as ManagedChild;
    launch = LAUNCHES[k % LAUNCHES.length] as WorkerLaunch;
    const { figures: f, next } = await killOne(coordinator, jobId, worker, ready, 'worker attached', () =>
      worker.start(),
    );
    const restartCpuMs = await processCpuMs(worker.pid);
    figures.push({ ...f, launch, restartCpuMs });
    ready = next;
    ctx.log(
      `restart kill ${k + 1} (worker-${k % WORKERS}, ${launch}): kill to ready ${f.killToReady} ms, detection to ready ${f.detectionToReady} ms, ` +
        `new process to its attach ${f.restartToAttach} ms, its CPU by every task ready ${restartCpuMs} ms`,
    );
  }
  await coordinator.client.cancelJob({ jobId });
  return figures;
}

/** Submits `jobId`, starts its worker processes (kept in `children`) and waits until every task is ready. */
async function startJob(
  ctx: ScenarioContext,
  stack: BenchStack,
  jobId: string,
  layout: readonly (readonly string[])[],
  children: ManagedChild[],
  how: { standby?: 'on-restart'; launch?: () => WorkerLaunch } = {},
): Promise<{ workers: ManagedChild[]; ready: LogEntry }> {
  const { coordinator } = stack;
  await coordinator.client.submitJob({ spec: wordCountSpec(jobId, INTERVAL_MS, SHAPE) });
  const base = { coordinator, nats: ctx.nats, jobId, tasks: layout, stateDir: stack.stateDir };
  const { standby, launch } = how;
  const workers = startWorkers({
    ...base,
    ...(standby === undefined ? {} : { name: 'worker', standby }),
    ...(launch === undefined ? {} : { launch }),
  });
  children.push(...workers);
  const ready = await coordinator.waitFor((e) => isReady(e, jobId, 1), READY_TIMEOUT_MS, 'the job started');
  return { workers, ready };
}

/** Waits until `count` standbys of `jobId` logged "standby waiting" since `sinceMs`. */
async function standbysWaiting(
  coordinator: BenchCoordinator,
  jobId: string,
  count: number,
  sinceMs: number,
): Promise<void> {
  const waiting = (): number =>
    coordinator.entries.filter((e) => e.jobId === jobId && e.msg === 'standby waiting' && e.time >= sinceMs).length;
  await coordinator.waitFor(() => waiting() >= count, READY_TIMEOUT_MS, `${count} standby(s) of ${jobId} waiting`);
}

/** Scenario 5 as `make bench` runs it: with the default options, or the quick ones for `ctx.quick`. */
export const recovery: Scenario = (ctx) =>
  recoveryScenario(ctx.quick === true ? QUICK_RECOVERY_OPTIONS : DEFAULT_RECOVERY_OPTIONS)(ctx);

/** How long the log lines of one recovery may trail its "every task ready". */
const LOG_LINE_TIMEOUT_MS = 5000;

function isReady(e: LogEntry, jobId: string, epoch: number): boolean {
  return e.jobId === jobId && e.msg === 'every task ready: job started' && (e.epoch ?? 0) >= epoch;
}

/**
 * Waits for a checkpoint completed after the job's last start (so that the
 * coordinator's backoff between recoveries in a row is reset and the
 * state is small), SIGKILLs `worker`, runs `afterKill` (a restart) and
 * waits until every task is ready in a newer epoch. `attachMsg` is the log
 * line of the killed tasks' new session: the restarted process's "worker
 * attached", or "standby promoted".
 */
async function killOne(
  coordinator: BenchCoordinator,
  jobId: string,
  worker: ManagedChild,
  ready: LogEntry,
  attachMsg: 'worker attached' | 'standby promoted',
  afterKill: () => void = () => undefined,
): Promise<{ figures: KillFigures; next: LogEntry }> {
  const epoch = ready.epoch ?? 1;
  const committed = (e: LogEntry): boolean =>
    e.jobId === jobId && e.msg === 'checkpoint completed' && e.time > ready.time;
  await coordinator.waitFor(committed, READY_TIMEOUT_MS, `a checkpoint in epoch ${epoch}`);
  const killedAt = Date.now();
  await worker.kill();
  const restartedAt = Date.now();
  afterKill();
  // Only a start after the kill counts: a recovery of its own before it (a failed checkpoint) must not stand in.
  const next = await coordinator.waitFor(
    (e) => isReady(e, jobId, epoch + 1) && e.time >= killedAt,
    READY_TIMEOUT_MS,
    `every task ready in epoch ${epoch + 1} after the kill`,
  );
  const after = (msg: string): Promise<LogEntry> =>
    coordinator
      .waitFor((e) => e.msg === msg && e.jobId === jobId && e.time >= killedAt, LOG_LINE_TIMEOUT_MS, `"${msg}"`)
      .catch(() => {
        const seen = coordinator.entries.filter((e) => e.jobId === jobId && e.time >= killedAt).map((e) => e.msg);
        throw new Error(`the coordinator did not log "${msg}" after the kill; it logged: ${seen.join(' | ')}`);
      });
  const [detected, attached, restoring] = await Promise.all([
    after('worker detached'),
    after(attachMsg),
    after('job recovery: every task restores'),
  ]);
  return {
    figures: {
      killToReady: next.time - killedAt,
      detectionToReady: next.time - detected.time,
      restartToAttach: attached.time - restartedAt,
      attachToReady: next.time - attached.time,
      detectionToRestore: restoring.time - detected.time,
    },
    next,
  };
}

function rows(
  prefix: '' | 'restart.' | 'restart.code_cache.',
  kills: readonly KillFigures[],
  layout: readonly (readonly string[])[],
  way: 'standby' | 'restart',
  system: SystemFacts,
): Row[] {
  const p50 = (pick: (k: KillFigures) => number): number => median(kills.map(pick));
  const launch = prefix === 'restart.code_cache.' ? 'code-cache' : way === 'restart' ? 'snapshot' : undefined;
  const started =
    launch === 'snapshot'
      ? `the restarted worker started from the V8 startup snapshot of that bundle (node --snapshot-blob ` +
        `dist/examples/wordcount/worker.snapshot.blob dist/examples/wordcount/bundled-worker.js), the restarts ` +
        `alternating with ones from the bundle and its code cache (recovery.restart.code_cache.*)`
      : launch === 'code-cache'
        ? `the restarted worker started from the bundle with its code cache, the restarts alternating with ones from ` +
          `the V8 startup snapshot (recovery.restart.*)`
        : 'the worker processes started from the bundle with its code cache';
  const how =
    way === 'standby'
      ? `next to each worker a standby worker process for the same tasks (examples/wordcount/bundled-worker.js --standby, ` +
        `connected and waiting): the killed worker's standby takes its tasks over, and the killed process is started ` +
        `again as the new standby before the next kill; p50 of the parts: detection to the new epoch and its restore ` +
        `commands issued ${p50((k) => k.detectionToRestore)} ms, the standby promoted to every task ready ` +
        `${p50((k) => k.attachToReady)} ms`
      : `no standbys: the killed worker is started again as soon as it has exited, so both figures include that ` +
        `process's start; p50 of the parts: detection to the new epoch and its restore commands issued ` +
        `${p50((k) => k.detectionToRestore)} ms, new process to its attach ${p50((k) => k.restartToAttach)} ms ` +
        `(its CPU time, every thread, by every task ready ${p50((k) => k.restartCpuMs ?? 0)} ms), ` +
        `its attach to every task ready ${p50((k) => k.attachToReady)} ms`;
  const conditions =
    `64 tasks (${SHAPE.splits} splits, ${SHAPE.counts} counts, 1 sink) in ${WORKERS} worker processes of ` +
    `${layout.map((t) => t.length).join('/')} tasks, ${SENTENCES} sentences stored before the start (small keyed ` +
    `state, all read before the first kill), a checkpoint every ${INTERVAL_MS} ms, local-directory state; a ` +
    `coordinator child process with heartbeats every 250 ms (timeout 3000 ms), one etcd and one NATS, ${coresText(system)}; ` +
    `${kills.length} kills, one worker at a time in turn, each after a checkpoint completed since the last recovery; ` +
    `the coordinator and the workers run the compiled JavaScript of make build with plain node, no tsx ` +
    `(node dist/src/cli/main.js coordinator, node dist/examples/wordcount/bundled-worker.js, the worker bundled into one file by esbuild and started with a V8 code cache); ${started}; ${how}; ` +
    `times from the coordinator's log timestamps; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join('/')} at the end; ` +
    `per kill, kill/detection to ready: ${kills.map((k) => `${k.killToReady}/${k.detectionToReady}`).join(', ')} ms`;
  const figure = (name: string, values: readonly number[], what: string, p50Target?: number): Row[] => {
    const { p50: middle, max } = spread(values);
    return (
      [
        ['p50', middle, p50Target],
        ['max', max, undefined],
      ] as const
    ).map(([stat, value, target]) => ({
      id: `recovery.${prefix}${name}.${stat}`,
      value,
      unit: 'ms',
      target: target ?? null,
      ratio: target === undefined ? null : Math.round((value / target) * 1000) / 1000,
      met: target === undefined ? null : value <= target,
      conditions: `${what}, ${stat}${target === undefined ? '' : `; target at most ${target} ms`}; ${conditions}`,
    }));
  };
  return [
    ...figure(
      'kill_to_ready',
      kills.map((k) => k.killToReady),
      'SIGKILL of one worker to every task ready in the new epoch',
      prefix === 'restart.' ? RESTART_KILL_TO_READY_TARGET_MS : undefined,
    ),
    ...figure(
      'detection_to_ready',
      kills.map((k) => k.detectionToReady),
      'the session end logged ("worker detached") to every task ready in the new epoch',
      way === 'standby' ? DETECTION_TO_READY_TARGET_MS : undefined,
    ),
  ];
}

if (isMain(import.meta.url)) await runStandalone('recovery', recovery);
