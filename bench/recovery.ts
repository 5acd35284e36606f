/**
 * Scenario 5, recovery: the word count scaled to 64 tasks in four worker
 * processes, with small state; one worker is SIGKILLed and started again
 * at once, a few times. Reported: from the kill, and from the
 * coordinator's detection (its "worker detached" log line, when the
 * session ends), to every task ready in the new epoch (its "every task
 * ready: job started" log line), both by the coordinator's timestamps.
 * The coordinator and the workers run the compiled JavaScript of dist/
 * with plain `node`, as a deployment does (bench/lib/compiled-child.ts),
 * so the restart measured is that of a production worker process.
 *
 *   make build && node --import tsx bench/recovery.ts [--quick]
 */
import { sentences } from '../examples/wordcount/corpus.js';
import { INPUT_STREAM, OUTPUT_STREAM, inputSubject, wordCountSpec, workerTasks } from '../examples/wordcount/job.js';
import type { ManagedChild } from '../test/chaos/child.js';
import { median, spread } from './lib/percentiles.js';
import type { Row, Scenario } from './lib/row.js';
import { isMain, runStandalone } from './standalone.js';
import {
  preloadInput,
  startBenchStack,
  startWorkers,
  stopWorkers,
  type BenchCoordinator,
  type LogEntry,
} from './wordcount-stack.js';

/** Target of the p50 from detection to every task ready again: 64 tasks, small state. */
const DETECTION_TO_READY_TARGET_MS = 500;

/** How the scenario runs. */
export interface RecoveryOptions {
  /** Kills, one at a time, each after the job has run and committed a checkpoint since the last. */
  kills: number;
}

/** The full run's options. */
export const DEFAULT_RECOVERY_OPTIONS: RecoveryOptions = { kills: 10 };
/** A smoke run's options (`ctx.quick`). */
export const QUICK_RECOVERY_OPTIONS: RecoveryOptions = { kills: 2 };

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
  /** The new worker process's start to its session opened ("worker attached"). */
  restartToAttach: number;
  /** That attach to every task ready. */
  attachToReady: number;
  /** Detection to the new epoch stored, `recover` broadcast and restore commands issued to the live workers. */
  detectionToRestore: number;
}

/** Scenario 5 with `options`. */
export function recoveryScenario(options: RecoveryOptions): Scenario {
  return async (ctx) => {
    const stack = await startBenchStack(ctx, ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '3000']);
    const layout = workerTasks(SHAPE, WORKERS);
    let workers: ManagedChild[] = [];
    try {
      const subjects = Array.from({ length: SHAPE.splits }, (_, i) => inputSubject(i));
      await preloadInput(stack.nc, sentences(SENTENCES), subjects);
      await stack.coordinator.client.submitJob({ spec: wordCountSpec(JOB_ID, INTERVAL_MS, SHAPE) });
      workers = startWorkers({
        coordinator: stack.coordinator,
        nats: ctx.nats,
        jobId: JOB_ID,
        tasks: layout,
        stateDir: stack.stateDir,
      });
      let ready = await stack.coordinator.waitFor((e) => isReady(e, 1), READY_TIMEOUT_MS, 'the job started');
      ctx.log(`job ${JOB_ID} running: 64 tasks in ${WORKERS} worker processes`);
      const kills: KillFigures[] = [];
      for (let k = 0; k < options.kills; k++) {
        const { figures, next } = await killOne(stack.coordinator, workers[k % WORKERS] as ManagedChild, ready);
        kills.push(figures);
        ready = next;
        ctx.log(
          `kill ${k + 1} (worker-${k % WORKERS}): kill to ready ${figures.killToReady} ms, detection to ready ${figures.detectionToReady} ms`,
        );
      }
      return rows(kills, layout);
    } finally {
      await stopWorkers(workers);
      await stack.stop([INPUT_STREAM, OUTPUT_STREAM]);
    }
  };
}

/** Scenario 5 as `make bench` runs it: with the default options, or the quick ones for `ctx.quick`. */
export const recovery: Scenario = (ctx) =>
  recoveryScenario(ctx.quick === true ? QUICK_RECOVERY_OPTIONS : DEFAULT_RECOVERY_OPTIONS)(ctx);

function isReady(e: LogEntry, epoch: number): boolean {
  return e.jobId === JOB_ID && e.msg === 'every task ready: job started' && (e.epoch ?? 0) >= epoch;
}

/**
 * Waits for a checkpoint completed after the job's last start (so that the
 * coordinator's backoff between recoveries in a row is reset and the
 * state is small), SIGKILLs `worker`, starts it again at once, and waits
 * until every task is ready in a newer epoch.
 */
async function killOne(
  coordinator: BenchCoordinator,
  worker: ManagedChild,
  ready: LogEntry,
): Promise<{ figures: KillFigures; next: LogEntry }> {
  const epoch = ready.epoch ?? 1;
  const committed = (e: LogEntry): boolean =>
    e.jobId === JOB_ID && e.msg === 'checkpoint completed' && e.time > ready.time;
  await coordinator.waitFor(committed, READY_TIMEOUT_MS, `a checkpoint in epoch ${epoch}`);
  const killedAt = Date.now();
  await worker.kill();
  const restartedAt = Date.now();
  worker.start();
  const next = await coordinator.waitFor(
    (e) => isReady(e, epoch + 1),
    READY_TIMEOUT_MS,
    `every task ready in epoch ${epoch + 1}`,
  );
  const after = (msg: string): LogEntry | undefined =>
    coordinator.entries.find((e) => e.msg === msg && e.jobId === JOB_ID && e.time >= killedAt);
  const detected = after('worker detached');
  const attached = after('worker attached');
  const restoring = after('job recovery: every task restores');
  if (detected === undefined || attached === undefined || restoring === undefined)
    throw new Error('the coordinator did not log the session end, the restore and the new attach');
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

function rows(kills: readonly KillFigures[], layout: readonly (readonly string[])[]): Row[] {
  const conditions =
    `64 tasks (${SHAPE.splits} splits, ${SHAPE.counts} counts, 1 sink) in ${WORKERS} worker processes of ` +
    `${layout.map((t) => t.length).join('/')} tasks, ${SENTENCES} sentences stored before the start (small keyed ` +
    `state, all read before the first kill), a checkpoint every ${INTERVAL_MS} ms, local-directory state; a ` +
    `coordinator child process with heartbeats every 250 ms (timeout 3000 ms), one etcd and one NATS, 2 cores; ` +
    `${kills.length} kills, one worker at a time in turn, each after a checkpoint completed since the last recovery; ` +
    `the coordinator and the workers run the compiled JavaScript of make build with plain node, no tsx ` +
    `(node dist/src/cli/main.js coordinator, node dist/examples/wordcount/worker.js); the killed worker is started ` +
    `again as soon as it has exited, so both figures include that process's start; p50 of the parts: detection to ` +
    `the new epoch and its restore commands issued ${median(kills.map((k) => k.detectionToRestore))} ms, new process ` +
    `to its attach ${median(kills.map((k) => k.restartToAttach))} ms, its attach to every task ready ` +
    `${median(kills.map((k) => k.attachToReady))} ms; times from the coordinator's log timestamps; ` +
    `per kill, kill/detection to ready: ${kills.map((k) => `${k.killToReady}/${k.detectionToReady}`).join(', ')} ms`;
  const figure = (name: string, values: readonly number[], what: string, p50Target?: number): Row[] => {
    const { p50, max } = spread(values);
    return (
      [
        ['p50', p50, p50Target],
        ['max', max, undefined],
      ] as const
    ).map(([stat, value, target]) => ({
      id: `recovery.${name}.${stat}`,
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
    ),
    ...figure(
      'detection_to_ready',
      kills.map((k) => k.detectionToReady),
      'the session end logged ("worker detached") to every task ready in the new epoch',
      DETECTION_TO_READY_TARGET_MS,
    ),
  ];
}

if (isMain(import.meta.url)) await runStandalone('recovery', recovery);
