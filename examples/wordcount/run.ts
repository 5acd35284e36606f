/**
 * Runs the word count end to end on a local etcd and NATS: a coordinator,
 * three worker processes (TypeScript, or some of them Go), a known corpus
 * fed into JetStream, workers SIGKILLed and restarted at chosen moments,
 * and the sink's visible output checked against the crash-free answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { silentLogger, type Logger } from '../../src/index.js';
// The harness runs etcd, NATS and a coordinator in-process: building
// blocks of the CLI, not of a user's pipeline.
import {
  connectNats,
  resolveConfig,
  runCoordinator,
  startLocalServers,
  type LocalServers,
  type RunningCoordinator,
} from '../../src/internal.js';
import { expectedCounts, sentences } from './corpus.js';
import { buildGoWorker } from './go-worker.js';
import { INPUT_STREAM, INPUT_SUBJECTS, OUTPUT_STREAM, TS_WORKERS, wordCountSpec, type WorkerPlan } from './job.js';
import { RoutingWatch } from './routing.js';
import { readStream, verify, type Verdict } from './verify.js';

/** How to run. */
export interface WordCountOptions {
  /** Sentences in the corpus. */
  sentences: number;
  /** Time over which the corpus is fed. */
  feedMs: number;
  /** Checkpoint interval of the job. */
  intervalMs: number;
  /** Workers to SIGKILL: when (fraction of the corpus fed) and which (index in `workers`); each is restarted. */
  kills: ReadonlyArray<{ at: number; worker: number }>;
  /** The worker processes, their language and tasks. Default `TS_WORKERS`. */
  workers?: readonly WorkerPlan[];
  /** How long to wait for the output after the corpus is fed. */
  settleTimeoutMs: number;
  /**
   * Where each worker serves its metrics (`--metrics` of `worker.ts`, which
   * prints the URL); port 0, as the workers share the host. Default: none.
   */
  workerMetrics?: string;
  /** Receives progress lines. */
  log: (line: string) => void;
  logger?: Logger;
}

/** What a run measured. */
export interface WordCountResult {
  verdict: Verdict;
  records: number;
  checkpoints: number;
  recoveries: number;
  /** Per kill: SIGKILL to every task running again, in ms. */
  recoveryMs: number[];
  durationMs: number;
  /** The coordinator's `/metrics` at the end of the run. */
  metrics: string;
  /**
   * Split-to-count records whose partitioning was checked (a run with
   * workers in more than one language checks it; 0 otherwise).
   */
  routedRecords: number;
}

const WORKER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'worker.ts');
const JOB_ID = 'wordcount';

/** Everything a run started, so that it can all be stopped. */
interface Stack {
  servers?: LocalServers;
  coordinator?: RunningCoordinator;
  nc?: NatsConnection;
  stateDir?: string;
  workers: Map<number, ChildProcess>;
  plan: readonly WorkerPlan[];
  /** The Go worker's binary, when a worker is in Go. */
  goBinary?: string;
  /** Watches the partitioning when the workers mix languages. */
  routing?: RoutingWatch;
  /** `WordCountOptions.workerMetrics`. */
  workerMetrics?: string;
  /** Checkpoints completed so far. */
  completed: number;
}

/** Runs the word count once; never leaves a process behind. */
export async function runWordCount(o: WordCountOptions): Promise<WordCountResult> {
  const plan = o.workers ?? TS_WORKERS;
  const stack: Stack = { workers: new Map(), plan, completed: 0, workerMetrics: o.workerMetrics };
  const started = Date.now();
  try {
    await startStack(stack, o);
    const corpus = sentences(o.sentences);
    const recoveryMs = await feed(stack, corpus, o);
    o.log(`fed ${corpus.length} sentences; waiting for the sink's output`);
    const expected = expectedCounts(corpus);
    const verdict = await settle(stack, expected, o);
    const routing = stack.routing?.stop();
    stack.routing = undefined;
    if (routing !== undefined) {
      o.log(`partitioning of ${routing.records} split-count records checked`);
      verdict.problems.push(...routing.problems);
      verdict.ok &&= routing.problems.length === 0;
    }
    const { job } = getJob(stack);
    return {
      verdict,
      records: corpus.length,
      checkpoints: stack.completed,
      recoveries: job.epoch - 1,
      recoveryMs,
      durationMs: Date.now() - started,
      metrics: await stack.coordinator!.metrics.text(),
      routedRecords: routing?.records ?? 0,
    };
  } finally {
    await stopStack(stack);
  }
}

async function startStack(stack: Stack, o: WordCountOptions): Promise<void> {
  if (stack.plan.some((w) => w.lang === 'go')) {
    o.log('building the Go worker (go/src/ckpt/examples/wordcount-split)');
    stack.goBinary = await buildGoWorker();
  }
  stack.servers = await startLocalServers();
  o.log(`etcd ${stack.servers.etcd.clientUrl}, NATS ${stack.servers.nats.url}`);
  const config = resolveConfig(
    {
      etcd: [stack.servers.etcd.clientUrl],
      nats: [stack.servers.nats.url],
      listen: '127.0.0.1:0',
      logLevel: 'warn',
      heartbeatIntervalMs: 250,
      heartbeatTimeoutMs: 3000,
    },
    {},
  );
  stack.coordinator = await runCoordinator(config, o.logger ?? silentLogger());
  o.log(`coordinator ${stack.coordinator.address}, dashboard http://${stack.coordinator.httpAddress}/`);
  stack.coordinator.coordinator.events.subscribe(JOB_ID, (c) => {
    if (c.state === 'CHECKPOINT_STATE_COMPLETED') stack.completed += 1;
  });
  stack.nc = await connectNats([stack.servers.nats.url], 'wordcount-feeder');
  const jsm = await jetstreamManager(stack.nc);
  await jsm.streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'] });
  if (new Set(stack.plan.map((w) => w.lang)).size > 1) {
    const tasks = stack.plan.flatMap((w) => w.tasks);
    const of = (kind: string): string[] => tasks.filter((t) => t.startsWith(kind));
    stack.routing = new RoutingWatch(stack.nc, JOB_ID, of('split-'), of('count-'));
  }
  await stack.coordinator.coordinator.submitJob(wordCountSpec(JOB_ID, o.intervalMs));
  stack.stateDir = await mkdtemp(join(tmpdir(), 'ckpt-wordcount-'));
  for (let i = 0; i < stack.plan.length; i++) startWorker(stack, i, 0);
  await waitRunning(stack, 1, 60_000);
  o.log(
    `job ${JOB_ID} running: ${stack.plan.map((w, i) => `${workerName(stack, i)} [${w.tasks.join(', ')}]`).join(', ')}`,
  );
}

/** A worker's name in the log: its index, and its language unless TypeScript. */
function workerName(stack: Stack, index: number): string {
  const lang = stack.plan[index]?.lang;
  return lang === 'go' ? `worker-${index} (Go)` : `worker-${index}`;
}

function startWorker(stack: Stack, index: number, generation: number): void {
  const plan = stack.plan[index]!;
  const common = [
    '--coordinator',
    stack.coordinator!.address,
    '--nats',
    stack.servers!.nats.url,
    '--job',
    JOB_ID,
    '--tasks',
    plan.tasks.join(','),
    '--state-dir',
    stack.stateDir!,
    '--worker-id',
    `worker-${index}-${generation}`,
  ];
  const child =
    plan.lang === 'go'
      ? spawn(stack.goBinary!, common, { stdio: ['ignore', 'ignore', 'inherit'] })
      : spawn(
          process.execPath,
          [
            '--import=tsx',
            WORKER_SCRIPT,
            ...common,
            ...(stack.workerMetrics === undefined ? [] : ['--metrics', stack.workerMetrics]),
          ],
          { stdio: ['ignore', 'ignore', 'inherit'] },
        );
  stack.workers.set(index, child);
}

function getJob(stack: Stack) {
  return { job: stack.coordinator!.coordinator.getJob(JOB_ID) };
}

async function waitRunning(stack: Stack, minEpoch: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { job } = getJob(stack);
    const total = job.spec?.tasks.length ?? 0;
    if (job.attempt === 'JOB_ATTEMPT_RUNNING' && job.epoch >= minEpoch && job.attachedTasks === total) return;
    if (Date.now() > deadline)
      throw new Error(
        `the job is not running in epoch ${minEpoch} after ${timeoutMs} ms (attempt ${job.attempt}, epoch ${job.epoch})`,
      );
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Publishes the corpus at an even pace, killing and restarting workers on the way. */
async function feed(stack: Stack, corpus: readonly string[], o: WordCountOptions): Promise<number[]> {
  const js = jetstream(stack.nc!);
  const kills = [...o.kills].sort((a, b) => a.at - b.at);
  const recoveries: Promise<number>[] = [];
  const batch = Math.max(1, Math.ceil(corpus.length / (o.feedMs / 20)));
  const begin = Date.now();
  let lastReport = begin;
  for (let i = 0; i < corpus.length; i += batch) {
    const acks = corpus.slice(i, i + batch).map((s, j) => js.publish(INPUT_SUBJECTS[(i + j) % 2] as string, s));
    await Promise.all(acks);
    while (kills.length > 0 && (kills[0]?.at ?? 1) * corpus.length <= i + batch)
      recoveries.push(kill(stack, kills.shift()!.worker, recoveries.length + 1, o));
    const due = begin + ((i + batch) / corpus.length) * o.feedMs;
    if (Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      const { job } = getJob(stack);
      o.log(
        `fed ${Math.min(i + batch, corpus.length)}/${corpus.length}; latest checkpoint ${job.latestCheckpointId}, epoch ${job.epoch}`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  return Promise.all(recoveries);
}

/** SIGKILLs a worker, restarts it, and resolves with the time until the job runs again. */
async function kill(stack: Stack, index: number, generation: number, o: WordCountOptions): Promise<number> {
  const before = getJob(stack).job;
  // A worker lost while the job runs raises the epoch; one lost while it restores does not.
  const minEpoch = before.attempt === 'JOB_ATTEMPT_RUNNING' ? before.epoch + 1 : before.epoch;
  const killedAt = Date.now();
  stack.workers.get(index)?.kill('SIGKILL');
  o.log(`SIGKILL ${workerName(stack, index)} [${stack.plan[index]!.tasks.join(', ')}]`);
  await new Promise((r) => setTimeout(r, 300));
  startWorker(stack, index, generation);
  await waitRunning(stack, minEpoch, 60_000);
  const ms = Date.now() - killedAt;
  o.log(`recovered: epoch ${getJob(stack).job.epoch}, every task running again ${ms} ms after the kill`);
  return ms;
}

/** Waits until the visible output has as many updates as the corpus has words, then checks it. */
async function settle(stack: Stack, expected: ReadonlyMap<string, number>, o: WordCountOptions): Promise<Verdict> {
  const wanted = [...expected.values()].reduce((a, b) => a + b, 0);
  const jsm = await jetstreamManager(stack.nc!);
  const deadline = Date.now() + o.settleTimeoutMs;
  let visible = 0;
  while (Date.now() < deadline) {
    visible = await jsm.streams.info(OUTPUT_STREAM).then(
      (i) => i.state.messages,
      () => 0,
    );
    if (visible >= wanted) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  o.log(`${visible} of ${wanted} updates visible`);
  // One more checkpoint interval: anything beyond the expected output would show now.
  await new Promise((r) => setTimeout(r, o.intervalMs * 2));
  return verify(await readStream(stack.nc!, OUTPUT_STREAM).catch(() => []), expected);
}

async function stopStack(stack: Stack): Promise<void> {
  stack.routing?.stop();
  for (const child of stack.workers.values()) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all([...stack.workers.values()].map((c) => waitExit(c, 5000)));
  await stack.nc?.close().catch(() => undefined);
  await stack.coordinator?.stop().catch(() => undefined);
  await stack.servers?.stop();
  if (stack.stateDir !== undefined) await rm(stack.stateDir, { recursive: true, force: true });
}

async function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}
