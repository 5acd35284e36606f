/**
 * The fault suite: the word count runs on a 3-member etcd cluster, NATS and
 * one or more coordinators while a seeded schedule of faults hits every
 * part of it. Afterwards it is judged from the outside only: the sink's
 * output must equal the crash-free output (exactly-once), etcd's
 * history must show the committed state never torn, never going backwards
 * and never written without a leader, and every piece of task state a
 * retained checkpoint names must read back whole, with no orphan left.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { expectedCounts, sentences } from '../../examples/wordcount/corpus.js';
import { OUTPUT_STREAM, WORKER_TASKS } from '../../examples/wordcount/job.js';
import { readStream, verify, type Verdict } from '../../examples/wordcount/verify.js';
import { logFigures, timesToNextCommit, type LogFigures } from './coordinator-log.js';
import { describeRecord, injectFault, type FaultRecord } from './faults.js';
import { feedCorpus } from './feeder.js';
import type { HandleCheckReport } from './handle-check.js';
import { checkHistory, failovers, type HistoryReport } from './history-check.js';
import { readHistory } from './history.js';
import { describeInputProgress, inputProgress } from './input-progress.js';
import { startMonitor, type Monitor } from './monitor.js';
import { resolveChaosOptions, stateCleanupInForce, type ChaosConfig, type ChaosOptions } from './options.js';
import { describeFault, drawSchedule, scheduleSpanMs, type PlannedFault } from './schedule.js';
import { ETCD_MEMBERS, JOB_ID, startStack, type Stack } from './stack.js';
import { checkState } from './state-check.js';

export { resolveChaosOptions, type ChaosOptions } from './options.js';

/** Log lines of each process a failed run's report keeps. */
const TAIL_LINES = 15;

/** The output check starts early when the output stops growing for this long: records were lost. */
const OUTPUT_STALL_MS = 30_000;

/** After the explicit sweep, time for the workers' listings and deletions to go round. */
const SWEEP_ROUND_TRIP_MS = 1_500;

/** How long the job may take to run for the first time. */
const FIRST_RUN_TIMEOUT_MS = 60_000;

/** Everything a run measured and found. */
export interface ChaosReport {
  config: Omit<ChaosConfig, 'log' | 'signal'>;
  /** The faults injected, in order. */
  faults: FaultRecord[];
  /** The sink's output against the crash-free output. */
  exactlyOnce: Verdict;
  /** etcd's history judged. */
  history: HistoryReport;
  /** The task state read back and the orphans found; undefined when the check itself failed (a violation says why). */
  state: HandleCheckReport | undefined;
  /** Figures from the coordinators' logs. */
  log: LogFigures;
  /** Epoch rises of the job in etcd. */
  recoveries: number;
  /** Leadership moving to another coordinator: from the election keys in etcd, or else as the probes saw it. */
  failovers: number;
  /** Leadership terms (election keys that led), 0 without an election. */
  terms: number;
  /** Per leader killed: the kill to the next checkpoint committed, in ms. */
  failoverToCommitMs: number[];
  /** Checkpoints committed, from etcd. */
  committed: number;
  /** Sentences fed. */
  sentences: number;
  /** Every violated invariant and every failure of the run itself; empty means the run passed. */
  violations: string[];
  /** The last stderr lines of every coordinator and worker, by process; filled only when something was violated. */
  tails: Record<string, string>;
  durationMs: number;
}

/** Runs the fault suite once; never leaves a process behind. */
export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const config = resolveChaosOptions(options);
  const started = Date.now();
  const schedule = drawSchedule({
    ...config,
    workers: WORKER_TASKS.length,
    etcdMembers: ETCD_MEMBERS,
    natsServers: config.natsCluster ? 3 : 1,
  });
  const spanMs = scheduleSpanMs(config);
  const corpus = sentences(Math.ceil((config.sentencesPerSecond * spanMs) / 1000), config.seed);
  config.log(
    `seed ${config.seed}: ${schedule.length} faults over ${(spanMs / 1000).toFixed(0)} s, ` +
      `${config.coordinators} coordinator(s), ${corpus.length} sentences`,
  );
  const stack = await startStack(config);
  const failures: string[] = [];
  try {
    await waitRunning(stack, FIRST_RUN_TIMEOUT_MS);
    config.log('job running; faults start');
    const since = Date.now();
    const monitor = startMonitor(stack);
    const feeding = feedAndRecord(stack, corpus, spanMs, config, failures);
    const faults = await runSchedule(stack, schedule, config, monitor, failures);
    await feeding;
    const exactlyOnce = await settle(stack, corpus, config, monitor);
    const state = await checkStateAfterSweep(stack, config, monitor, failures);
    await monitor.stop();
    return await judge({ stack, config, faults, exactlyOnce, state, monitor, since, failures, started, corpus });
  } finally {
    await stack.stop();
  }
}

async function feedAndRecord(
  stack: Stack,
  corpus: readonly string[],
  spanMs: number,
  config: ChaosConfig,
  failures: string[],
): Promise<void> {
  await feedCorpus(stack.feeder, corpus, spanMs, config.signal).then(
    () => config.log(`fed ${corpus.length} sentences`),
    (err: unknown) => void failures.push(`feeding the corpus failed: ${(err as Error).message}`),
  );
}

/** Injects the faults one after another, each no earlier than its offset. */
async function runSchedule(
  stack: Stack,
  schedule: readonly PlannedFault[],
  config: ChaosConfig,
  monitor: Monitor,
  failures: string[],
): Promise<FaultRecord[]> {
  const begin = Date.now();
  const records: FaultRecord[] = [];
  for (const fault of schedule) {
    if (config.signal?.aborted) break;
    await delay(Math.max(0, begin + fault.atMs - Date.now()));
    try {
      const record = await injectFault(stack, fault);
      records.push(record);
      const job = monitor.view().job;
      config.log(`${describeRecord(record)}; epoch ${job?.epoch ?? '?'}, latest ${job?.latestCheckpointId ?? '?'}`);
    } catch (err) {
      failures.push(`fault ${describeFault(fault)} could not be injected: ${(err as Error).message}`);
    }
  }
  return records;
}

/** Waits until the job runs: every task ready, as the leader reports it. */
async function waitRunning(stack: Stack, timeoutMs: number): Promise<void> {
  const monitor = startMonitor(stack, 100);
  try {
    const deadline = Date.now() + timeoutMs;
    while (monitor.view().job?.attempt !== 'JOB_ATTEMPT_RUNNING') {
      if (Date.now() > deadline) {
        const tails = [...stack.coordinators, ...stack.workers]
          .map((p) => `--- ${p.child.spec.label} ---\n${p.child.tail(10)}`)
          .join('\n');
        throw new Error(`the job is not running after ${timeoutMs} ms\n${tails}`);
      }
      await delay(100);
    }
  } finally {
    await monitor.stop();
  }
}

/**
 * Waits until the output has as many updates as the corpus has words (or
 * the settle timeout passed, or the output stopped growing), two checkpoint
 * intervals more so that any excess would show, then checks it.
 */
async function settle(
  stack: Stack,
  corpus: readonly string[],
  config: ChaosConfig,
  monitor: Monitor,
): Promise<Verdict> {
  const expected = expectedCounts(corpus);
  const wanted = [...expected.values()].reduce((a, b) => a + b, 0);
  const jsm = await jetstreamManager(stack.nc);
  const deadline = Date.now() + config.settleTimeoutMs;
  let visible = 0;
  let lastReport = 0;
  let grewAt = Date.now();
  while (Date.now() < deadline) {
    const seen = await jsm.streams.info(OUTPUT_STREAM).then(
      (i) => i.state.messages,
      () => visible,
    );
    if (seen !== visible) grewAt = Date.now();
    visible = seen;
    if (visible >= wanted) break;
    if (Date.now() - grewAt > OUTPUT_STALL_MS) {
      config.log(`the output has not grown for ${OUTPUT_STALL_MS / 1000} s; checking it as it is`);
      break;
    }
    if (Date.now() - lastReport > 5_000) {
      lastReport = Date.now();
      const job = monitor.view().job;
      config.log(`${visible}/${wanted} updates visible; epoch ${job?.epoch ?? '?'}, attempt ${job?.attempt ?? '?'}`);
    }
    await delay(250);
  }
  config.log(`${visible} of ${wanted} updates visible`);
  await delay(config.intervalMs * 2);
  const verdict = verify(await readStream(stack.nc, OUTPUT_STREAM).catch(() => []), expected);
  if (!verdict.ok) {
    // Whether the sources stopped short of their input's end, or records went missing after they were read.
    await inputProgress(stack.nc, {
      urls: stack.etcd.clientUrls,
      security: stack.etcdSecurity,
      prefix: config.etcdPrefix,
      jobId: JOB_ID,
    }).then(
      (p) => config.log(describeInputProgress(p)),
      (err: unknown) => config.log(`the inputs' progress could not be read: ${(err as Error).message}`),
    );
  }
  return verdict;
}

/**
 * Has the leader sweep the job's state now, then checks it (`checkState`).
 * Orphans are judged only when that sweep surely reached the job's
 * workers: a coordinator leads, it answered, and the job runs.
 */
async function checkStateAfterSweep(
  stack: Stack,
  config: ChaosConfig,
  monitor: Monitor,
  failures: string[],
): Promise<HandleCheckReport | undefined> {
  const notJudgedWhy = await sweepNow(stack, monitor);
  config.log(notJudgedWhy === undefined ? 'state swept; checking it' : `checking the state; ${notJudgedWhy}`);
  try {
    return await checkState({
      etcdUrls: stack.etcd.clientUrls,
      etcdSecurity: stack.etcdSecurity,
      etcdPrefix: config.etcdPrefix,
      stateDir: stack.stateDir,
      jobId: JOB_ID,
      ...stateCleanupInForce(config),
      notJudgedWhy,
      log: config.log,
      signal: config.signal,
    });
  } catch (err) {
    failures.push(`state handle check could not run: ${(err as Error).message}`);
    return undefined;
  }
}

/** Asks the leader for a sweep; undefined when it surely reached the workers, else why not. */
async function sweepNow(stack: Stack, monitor: Monitor): Promise<string | undefined> {
  const { leader, job } = monitor.view();
  const node = leader === undefined ? undefined : stack.coordinators[leader];
  if (node === undefined) return 'no coordinator leads, so no sweep is sure to have run';
  if (job?.attempt !== 'JOB_ATTEMPT_RUNNING')
    return `the job is not running (${job?.attempt ?? '?'}): workers may be detached`;
  try {
    await node.client.collectGarbage(JOB_ID);
  } catch (err) {
    return `the sweep asked of coordinator-${node.index} failed: ${(err as Error).message}`;
  }
  await delay(SWEEP_ROUND_TRIP_MS);
  return undefined;
}

interface Outcome {
  stack: Stack;
  config: ChaosConfig;
  faults: FaultRecord[];
  exactlyOnce: Verdict;
  state: HandleCheckReport | undefined;
  monitor: Monitor;
  since: number;
  failures: string[];
  started: number;
  corpus: readonly string[];
}

/** Reads etcd's history and the logs, and collects every violation. */
async function judge(o: Outcome): Promise<ChaosReport> {
  const history = checkHistory(await readHistory(o.stack.etcd.clientUrls, undefined, o.stack.etcdSecurity), {
    etcdPrefix: o.config.etcdPrefix,
    electionPrefix: o.config.electionPrefix,
  });
  const job = history.jobs.find((j) => j.jobId === JOB_ID);
  const violations = [
    ...o.failures,
    ...o.exactlyOnce.problems.map((p) => `exactly-once: ${p}`),
    ...history.violations.map((v) => `etcd history: ${v}`),
    ...(o.state?.violations ?? []),
  ];
  if (job === undefined) violations.push(`etcd history: job ${JOB_ID} never appears`);
  const { log: _log, signal: _signal, ...config } = o.config;
  return {
    config,
    faults: o.faults,
    exactlyOnce: o.exactlyOnce,
    history,
    state: o.state,
    log: logFigures(o.stack.events, JOB_ID, o.since),
    recoveries: Math.max(0, (job?.epochs.length ?? 1) - 1),
    failovers: history.leaders.length > 0 ? failovers(history.leaders) : o.monitor.view().failovers,
    terms: history.leaders.length,
    failoverToCommitMs: timesToNextCommit(
      o.stack.events,
      JOB_ID,
      o.faults
        .filter((f) => f.fault.kind === 'kill-coordinator')
        .map((f) => ({ at: f.startedAt, coordinator: Number(/coordinator-(\d+)/.exec(f.target)?.[1] ?? -1) })),
    ),
    committed: job?.committedIds.length ?? 0,
    sentences: o.corpus.length,
    violations,
    tails: violations.length === 0 ? {} : processTails(o.stack),
    durationMs: Date.now() - o.started,
  };
}

/** The last log lines of every coordinator and worker. */
function processTails(stack: Stack): Record<string, string> {
  const tails: Record<string, string> = {};
  for (const p of [...stack.coordinators, ...stack.workers]) tails[p.child.spec.label] = p.child.tail(TAIL_LINES);
  return tails;
}
