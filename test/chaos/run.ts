/**
 * The fault suite: word count jobs run side by side on a 3-member etcd
 * cluster, NATS and one or more coordinators while a seeded schedule of
 * faults hits every part of it. Afterwards each job is judged from the
 * outside only: its sink's output must equal its crash-free output
 * (exactly-once), etcd's history must show the committed state never torn,
 * never going backwards and never written without a leader, and every
 * piece of task state a retained checkpoint names must read back whole,
 * with no orphan left.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { WORKER_TASKS } from '../../examples/wordcount/job.js';
import { expectedCounts, sentences } from '../../examples/wordcount/corpus.js';
import type { JobInfo__Output as JobInfo } from '../../src/gen/ckpt/v1/JobInfo.js';
import { readStream, verify, type Verdict } from '../../examples/wordcount/verify.js';
import { logFigures, timesToEveryJobCommit, type LogFigures } from './coordinator-log.js';
import { describeRecord, injectFault, type FaultRecord } from './faults.js';
import { feedCorpus } from './feeder.js';
import type { HandleCheckReport } from './handle-check.js';
import { checkHistory, failovers, type HistoryReport } from './history-check.js';
import { readHistory } from './history.js';
import { describeInputProgress, inputProgress } from './input-progress.js';
import { startMonitor, type Monitor } from './monitor.js';
import { resolveChaosOptions, stateCleanupInForce, type ChaosConfig, type ChaosOptions } from './options.js';
import { describeFault, drawSchedule, scheduleSpanMs, type PlannedFault } from './schedule.js';
import { chaosJobIds, ETCD_MEMBERS, startStack, type ChaosJob, type Stack } from './stack.js';
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

/** What a run found of one job. */
export interface JobOutcome {
  jobId: string;
  /** Sentences fed to it. */
  sentences: number;
  /** Its sink's output against the crash-free output. */
  exactlyOnce: Verdict;
  /** Its task state read back and the orphans found; undefined when the check itself failed (a violation says why). */
  state: HandleCheckReport | undefined;
  /** Its figures from the coordinators' logs. */
  log: LogFigures;
  /** Its epoch rises in etcd. */
  recoveries: number;
  /** Its checkpoints committed, from etcd. */
  committed: number;
}

/** Everything a run measured and found. */
export interface ChaosReport {
  config: Omit<ChaosConfig, 'log' | 'signal'>;
  /** The faults injected, in order. */
  faults: FaultRecord[];
  /** Each job's outcome, in the stack's order. */
  jobs: JobOutcome[];
  /** etcd's history judged. */
  history: HistoryReport;
  /** Epoch rises over every job. */
  recoveries: number;
  /** Leadership moving to another coordinator: from the election keys in etcd, or else as the probes saw it. */
  failovers: number;
  /** Leadership terms (election keys that led), 0 without an election. */
  terms: number;
  /**
   * Per leader killed: the kill to the moment every job has committed a
   * checkpoint through a coordinator other than the one killed, in ms.
   */
  failoverToCommitMs: number[];
  /** Longest time any one job went without a commit once the faults began, in ms. */
  longestCommitGapMs: number;
  /** Checkpoints committed over every job, from etcd. */
  committed: number;
  /** Sentences fed over every job. */
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
    workers: config.jobs * WORKERS_PER_JOB,
    etcdMembers: ETCD_MEMBERS,
    natsServers: config.natsCluster ? 3 : 1,
  });
  const spanMs = scheduleSpanMs(config);
  // The rate is over every job; the first job's corpus is the one a single-job run of the seed reads.
  const perJob = Math.ceil((config.sentencesPerSecond * spanMs) / 1000 / config.jobs);
  const corpora = new Map(
    chaosJobIds(config.jobs).map((jobId, j) => [jobId, sentences(perJob, config.seed + j * 7919)]),
  );
  config.log(
    `seed ${config.seed}: ${schedule.length} faults over ${(spanMs / 1000).toFixed(0)} s, ` +
      `${config.coordinators} coordinator(s), ${config.jobs} job(s) of ${perJob} sentences`,
  );
  const stack = await startStack(config);
  const failures: string[] = [];
  try {
    await waitRunning(stack, FIRST_RUN_TIMEOUT_MS);
    config.log(`${stack.jobs.length === 1 ? 'job' : 'every job'} running; faults start`);
    const since = Date.now();
    const monitor = startMonitor(stack);
    const feeding = Promise.all(stack.jobs.map((job) => feedAndRecord(stack, job, corpora, spanMs, config, failures)));
    const faults = await runSchedule(stack, schedule, config, monitor, failures);
    await feeding;
    const verdicts = await Promise.all(stack.jobs.map((job) => settle(stack, job, corpora, config, monitor)));
    const states: Array<HandleCheckReport | undefined> = [];
    for (const job of stack.jobs) states.push(await checkStateAfterSweep(stack, job, config, monitor, failures));
    await monitor.stop();
    return await judge({ stack, config, faults, verdicts, states, monitor, since, failures, started, corpora });
  } finally {
    await stack.stop();
  }
}

/** Worker processes each job runs. */
const WORKERS_PER_JOB = WORKER_TASKS.length;

async function feedAndRecord(
  stack: Stack,
  job: ChaosJob,
  corpora: ReadonlyMap<string, readonly string[]>,
  spanMs: number,
  config: ChaosConfig,
  failures: string[],
): Promise<void> {
  const corpus = corpora.get(job.jobId) ?? [];
  await feedCorpus(stack.feeder, job.io, corpus, spanMs, config.signal).then(
    () => config.log(`fed ${corpus.length} sentences to ${job.jobId}`),
    (err: unknown) => void failures.push(`feeding the corpus of ${job.jobId} failed: ${(err as Error).message}`),
  );
}

/** Each job's epoch and latest checkpoint as last seen, for the progress log. */
function progress(stack: Stack, monitor: Monitor): string {
  return stack.jobs
    .map(({ jobId }) => {
      const job = monitor.job(jobId).job;
      const where = `epoch ${job?.epoch ?? '?'}, latest ${job?.latestCheckpointId ?? '?'}`;
      return stack.jobs.length === 1 ? where : `${jobId}: ${where}`;
    })
    .join('; ');
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
      config.log(`${describeRecord(record)}; ${progress(stack, monitor)}`);
    } catch (err) {
      failures.push(`fault ${describeFault(fault)} could not be injected: ${(err as Error).message}`);
    }
  }
  return records;
}

/** Waits until every job runs: every task ready, as its leader reports it. */
async function waitRunning(stack: Stack, timeoutMs: number): Promise<void> {
  const monitor = startMonitor(stack, 100);
  const running = (info: JobInfo | undefined): boolean => info?.attempt === 'JOB_ATTEMPT_RUNNING';
  try {
    const deadline = Date.now() + timeoutMs;
    while (!stack.jobs.every(({ jobId }) => running(monitor.job(jobId).job))) {
      if (Date.now() > deadline) {
        const tails = [...stack.coordinators, ...stack.workers]
          .map((p) => `--- ${p.child.spec.label} ---\n${p.child.tail(10)}`)
          .join('\n');
        const waiting = stack.jobs.filter(({ jobId }) => !running(monitor.job(jobId).job)).map((j) => j.jobId);
        throw new Error(`not running after ${timeoutMs} ms: ${waiting.join(', ')}\n${tails}`);
      }
      await delay(100);
    }
  } finally {
    await monitor.stop();
  }
}

/**
 * Waits until a job's output has as many updates as its corpus has words
 * (or the settle timeout passed, or the output stopped growing), two
 * checkpoint intervals more so that any excess would show, then checks it.
 */
async function settle(
  stack: Stack,
  { jobId, io }: ChaosJob,
  corpora: ReadonlyMap<string, readonly string[]>,
  config: ChaosConfig,
  monitor: Monitor,
): Promise<Verdict> {
  const expected = expectedCounts(corpora.get(jobId) ?? []);
  const named = (line: string): string => (stack.jobs.length === 1 ? line : `${jobId}: ${line}`);
  const wanted = [...expected.values()].reduce((a, b) => a + b, 0);
  const jsm = await jetstreamManager(stack.nc);
  const deadline = Date.now() + config.settleTimeoutMs;
  let visible = 0;
  let lastReport = 0;
  let grewAt = Date.now();
  while (Date.now() < deadline) {
    const seen = await jsm.streams.info(io.outputStream).then(
      (i) => i.state.messages,
      () => visible,
    );
    if (seen !== visible) grewAt = Date.now();
    visible = seen;
    if (visible >= wanted) break;
    if (Date.now() - grewAt > OUTPUT_STALL_MS) {
      config.log(named(`the output has not grown for ${OUTPUT_STALL_MS / 1000} s; checking it as it is`));
      break;
    }
    if (Date.now() - lastReport > 5_000) {
      lastReport = Date.now();
      const job = monitor.job(jobId).job;
      config.log(
        named(`${visible}/${wanted} updates visible; epoch ${job?.epoch ?? '?'}, attempt ${job?.attempt ?? '?'}`),
      );
    }
    await delay(250);
  }
  config.log(named(`${visible} of ${wanted} updates visible`));
  await delay(config.intervalMs * 2);
  const verdict = verify(await readStream(stack.nc, io.outputStream).catch(() => []), expected);
  if (!verdict.ok) {
    // Whether the sources stopped short of their input's end, or records went missing after they were read.
    await inputProgress(stack.nc, {
      urls: stack.etcd.clientUrls,
      security: stack.etcdSecurity,
      prefix: config.etcdPrefix,
      jobId,
    }).then(
      (p) => config.log(named(describeInputProgress(p))),
      (err: unknown) => config.log(`the inputs' progress could not be read: ${(err as Error).message}`),
    );
  }
  return verdict;
}

/**
 * Has a job's leader sweep the job's state now, then checks it
 * (`checkState`). Orphans are judged only when that sweep surely reached
 * the job's workers: a coordinator leads, it answered, and the job runs.
 */
async function checkStateAfterSweep(
  stack: Stack,
  { jobId }: ChaosJob,
  config: ChaosConfig,
  monitor: Monitor,
  failures: string[],
): Promise<HandleCheckReport | undefined> {
  const notJudgedWhy = await sweepNow(stack, jobId, monitor);
  const line = notJudgedWhy === undefined ? 'state swept; checking it' : `checking the state; ${notJudgedWhy}`;
  config.log(stack.jobs.length === 1 ? line : `${jobId}: ${line}`);
  try {
    return await checkState({
      etcdUrls: stack.etcd.clientUrls,
      etcdSecurity: stack.etcdSecurity,
      etcdPrefix: config.etcdPrefix,
      stateDir: stack.stateDir,
      jobId,
      ...stateCleanupInForce(config),
      notJudgedWhy,
      log: config.log,
      signal: config.signal,
    });
  } catch (err) {
    failures.push(`state handle check of ${jobId} could not run: ${(err as Error).message}`);
    return undefined;
  }
}

/** Asks the job's leader for a sweep; undefined when it surely reached the workers, else why not. */
async function sweepNow(stack: Stack, jobId: string, monitor: Monitor): Promise<string | undefined> {
  const { leader, job } = monitor.job(jobId);
  const node = leader === undefined ? undefined : stack.coordinators[leader];
  if (node === undefined) return 'no coordinator leads, so no sweep is sure to have run';
  if (job?.attempt !== 'JOB_ATTEMPT_RUNNING')
    return `the job is not running (${job?.attempt ?? '?'}): workers may be detached`;
  try {
    await node.client.collectGarbage(jobId);
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
  /** Per job, in the stack's order. */
  verdicts: Verdict[];
  states: Array<HandleCheckReport | undefined>;
  monitor: Monitor;
  since: number;
  failures: string[];
  started: number;
  corpora: ReadonlyMap<string, readonly string[]>;
}

/** Reads etcd's history and the logs, and collects every violation. */
async function judge(o: Outcome): Promise<ChaosReport> {
  const history = checkHistory(await readHistory(o.stack.etcd.clientUrls, undefined, o.stack.etcdSecurity), {
    etcdPrefix: o.config.etcdPrefix,
    electionPrefix: o.config.electionPrefix,
    jobGroups: o.config.jobGroups,
  });
  const several = o.stack.jobs.length > 1;
  const violations = [...o.failures, ...history.violations.map((v) => `etcd history: ${v}`)];
  const jobs = o.stack.jobs.map(({ jobId }, j): JobOutcome => {
    const exactlyOnce = o.verdicts[j] as Verdict;
    const state = o.states[j];
    const named = (what: string): string => (several ? `${jobId}: ${what}` : what);
    violations.push(...exactlyOnce.problems.map((p) => named(`exactly-once: ${p}`)));
    violations.push(...(state?.violations ?? []).map(named));
    const job = history.jobs.find((h) => h.jobId === jobId);
    if (job === undefined) violations.push(`etcd history: job ${jobId} never appears`);
    return {
      jobId,
      sentences: o.corpora.get(jobId)?.length ?? 0,
      exactlyOnce,
      state,
      log: logFigures(o.stack.events, jobId, o.since),
      recoveries: Math.max(0, (job?.epochs.length ?? 1) - 1),
      committed: job?.committedIds.length ?? 0,
    };
  });
  const { log: _log, signal: _signal, ...config } = o.config;
  const sum = (of: (j: JobOutcome) => number): number => jobs.reduce((n, j) => n + of(j), 0);
  return {
    config,
    faults: o.faults,
    jobs,
    history,
    recoveries: sum((j) => j.recoveries),
    failovers: history.leaders.length > 0 ? failovers(history.leaders) : o.monitor.view().failovers,
    terms: history.leaders.length,
    failoverToCommitMs: timesToEveryJobCommit(
      o.stack.events,
      jobs.map((j) => j.jobId),
      o.faults
        .filter((f) => f.fault.kind === 'kill-coordinator')
        .map((f) => ({ at: f.startedAt, coordinator: Number(/coordinator-(\d+)/.exec(f.target)?.[1] ?? -1) })),
    ),
    longestCommitGapMs: Math.max(0, ...jobs.map((j) => j.log.longestCommitGapMs)),
    committed: sum((j) => j.committed),
    sentences: sum((j) => j.sentences),
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
