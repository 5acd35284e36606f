/**
 * Scenario `failover`: three coordinator processes on one etcd prefix, the
 * word count (3 worker processes, 5 tasks) attached to them with all three
 * addresses; the leading coordinator is SIGKILLed again and again, and
 * started again as a standby on its address once another coordinator has
 * committed a checkpoint.
 *
 * Reported: from the kill to the next checkpoint committed by another
 * coordinator (p50 and max, with targets), and the parts of that time from
 * the new leader's log: the kill to its "elected leader" (the dead leader's
 * election key gone), to "coordinator started" (its jobs loaded), to the
 * last of the job's workers attached, to "checkpoint completed". The
 * coordinators and the workers run the compiled JavaScript of dist/ with
 * plain `node` (`make build` first).
 *
 *   make build && node --import tsx bench/failover.ts [--quick]
 *
 * With CKPT_BENCH_FAILOVER_LOG_DIR=<dir>, the workers log at debug level
 * into files there, and the coordinators their lines too.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { sentences } from '../examples/wordcount/corpus.js';
import { INPUT_STREAM, INPUT_SUBJECTS, OUTPUT_STREAM, WORKER_TASKS, wordCountSpec } from '../examples/wordcount/job.js';
import { connectNats } from '../src/bus/index.js';
import { DEFAULT_CONFIG } from '../src/config/index.js';
import { createCoordinatorClient } from '../src/client/index.js';
import { ManagedChild } from '../test/chaos/child.js';
import { COMPILED_NODE_ARGS, COMPILED_WORDCOUNT_WORKER } from './lib/compiled-child.js';
import { FailoverCluster, type FailoverLogEntry } from './lib/failover-cluster.js';
import { failoverRows, type FailoverFigures } from './lib/failover-rows.js';
import { spread } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import { isMain, runStandalone } from './standalone.js';
import { deleteStream, preloadInput } from './wordcount-stack.js';

/** How the scenario runs. */
export interface FailoverOptions {
  /** Leader kills, one after the other, each after a checkpoint committed by the leader killed. */
  kills: number;
  /** Then leader pauses (SIGSTOP for `PAUSE_HOLD_MS`), likewise. */
  pauses: number;
}

/** The full run's options. */
export const DEFAULT_FAILOVER_OPTIONS: FailoverOptions = { kills: 10, pauses: 4 };
/** A smoke run's options (`ctx.quick`). */
export const QUICK_FAILOVER_OPTIONS: FailoverOptions = { kills: 2, pauses: 1 };

const COORDINATORS = 3;
const JOB_ID = 'failover';
const INTERVAL_MS = 500;
const SENTENCES = 2000;
/** Coordinator flags: the chaos suite's heartbeats; the lease TTL and the rest at their defaults. */
const COORDINATOR_FLAGS = ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '3000'];
/** With CKPT_BENCH_FAILOVER_LOG_DIR set, the workers log at debug level into files there. */
const LOG_DIR = process.env.CKPT_BENCH_FAILOVER_LOG_DIR || undefined;
/** How long a paused leader stays paused: the default lease TTL and 2 s. */
const PAUSE_HOLD_MS = DEFAULT_CONFIG.leaseTtlMs + 2000;
/** Longest the job may take to start, or to commit after a kill. */
const COMMIT_TIMEOUT_MS = 60_000;

/** Scenario `failover` with `options`. */
export function failoverScenario(options: FailoverOptions): Scenario {
  return async (ctx) => {
    const stateDir = await mkdtemp(join(tmpdir(), 'ckpt-bench-failover-'));
    let nc: NatsConnection | undefined;
    let cluster: FailoverCluster | undefined;
    const workers: ManagedChild[] = [];
    try {
      nc = await connectNats([...ctx.nats], `${ctx.prefix}-bench`);
      await preloadInput(nc, sentences(SENTENCES), [...INPUT_SUBJECTS]);
      cluster = await FailoverCluster.start(ctx, COORDINATORS, COORDINATOR_FLAGS);
      const client = createCoordinatorClient(cluster.addresses);
      try {
        await client.submitJob({ spec: wordCountSpec(JOB_ID, INTERVAL_MS) });
      } finally {
        client.close();
      }
      workers.push(...startWorkers(ctx, cluster.addresses, stateDir));
      ctx.log(`job ${JOB_ID} submitted: ${WORKER_TASKS.length} worker processes, ${COORDINATORS} coordinators`);
      const figures = await killLeaders(ctx, cluster, options.kills);
      const paused = await pauseLeaders(ctx, cluster, options.pauses);
      return [...rows(figures, ctx), ...pauseRows(paused)];
    } finally {
      await Promise.all(workers.map((w) => w.stop(3000)));
      await cluster?.stop();
      if (nc !== undefined) {
        for (const stream of [INPUT_STREAM, OUTPUT_STREAM]) await deleteStream(nc, stream).catch(() => undefined);
        await nc.close().catch(() => undefined);
      }
      await rm(stateDir, { recursive: true, force: true });
    }
  };
}

/** The word count's worker processes, each given every coordinator address. */
function startWorkers(ctx: ScenarioContext, addresses: readonly string[], stateDir: string): ManagedChild[] {
  return WORKER_TASKS.map((tasks, i) => {
    const child: ManagedChild = new ManagedChild({
      nodeArgs: COMPILED_NODE_ARGS,
      label: `worker-${i}`,
      args: () => [
        COMPILED_WORDCOUNT_WORKER,
        ...['--coordinator', addresses.join(',')],
        ...['--nats', ctx.nats.join(',')],
        ...['--job', JOB_ID],
        ...['--tasks', tasks.join(',')],
        ...['--state-dir', stateDir],
        ...['--worker-id', `${JOB_ID}-worker-${i}-${child.starts}`],
        ...(LOG_DIR === undefined ? [] : ['--log-level', 'debug']),
      ],
      ...(LOG_DIR === undefined ? {} : { logFile: join(LOG_DIR, `worker-${i}.log`) }),
    });
    child.start();
    return child;
  });
}

/**
 * Kills the leader `kills` times: each time after it committed a
 * checkpoint, and waits for the next checkpoint committed by another
 * coordinator; then starts the killed one again as a standby.
 */
async function killLeaders(ctx: ScenarioContext, cluster: FailoverCluster, kills: number): Promise<FailoverFigures[]> {
  const figures: FailoverFigures[] = [];
  let since = 0;
  for (let k = 0; k < kills; k++) {
    const commit = await cluster.waitFor(
      (e) => isCommit(e) && e.time > since,
      COMMIT_TIMEOUT_MS,
      `a checkpoint of ${JOB_ID} before kill ${k + 1}`,
    );
    const leader = commit.from;
    const killedAtMs = Date.now();
    await cluster.kill(leader);
    const next = await cluster.waitFor(
      (e) => isCommit(e) && e.from !== leader && e.time >= killedAtMs,
      COMMIT_TIMEOUT_MS,
      `a checkpoint of ${JOB_ID} committed by another coordinator after kill ${k + 1}`,
    );
    const f = parts(cluster.entries, next, killedAtMs);
    figures.push(f);
    ctx.log(
      `kill ${k + 1} (coordinator-${leader}): next commit by coordinator-${next.from} after ${f.killToCommitMs} ms ` +
        `(elected ${f.killToElectedMs}, loaded +${f.electedToLoadedMs}, workers +${f.loadedToAttachedMs}, ` +
        `commit +${f.attachedToCommitMs})`,
    );
    await cluster.restart(leader);
    since = next.time;
  }
  return figures;
}

/**
 * Pauses the leader `pauses` times with SIGSTOP, each time after it
 * committed a checkpoint, for `PAUSE_HOLD_MS` (the lease TTL and 2 s, as
 * the fault suite holds a leader's pause): the time from the pause to the
 * next checkpoint committed by another coordinator, in ms, each.
 */
async function pauseLeaders(ctx: ScenarioContext, cluster: FailoverCluster, pauses: number): Promise<number[]> {
  const times: number[] = [];
  let since = Date.now();
  for (let p = 0; p < pauses; p++) {
    const commit = await cluster.waitFor(
      (e) => isCommit(e) && e.time > since,
      COMMIT_TIMEOUT_MS,
      `a checkpoint of ${JOB_ID} before pause ${p + 1}`,
    );
    const leader = commit.from;
    const pausedAtMs = Date.now();
    cluster.pause(leader);
    const resumed = delay(PAUSE_HOLD_MS).then(() => cluster.resume(leader));
    try {
      const next = await cluster.waitFor(
        (e) => isCommit(e) && e.from !== leader && e.time >= pausedAtMs,
        COMMIT_TIMEOUT_MS,
        `a checkpoint of ${JOB_ID} committed by another coordinator after pause ${p + 1}`,
      );
      times.push(next.time - pausedAtMs);
      ctx.log(
        `pause ${p + 1} (coordinator-${leader}, ${PAUSE_HOLD_MS} ms): next commit by coordinator-${next.from} ` +
          `after ${next.time - pausedAtMs} ms`,
      );
      since = next.time;
    } finally {
      await resumed;
    }
  }
  return times;
}

function pauseRows(times: readonly number[]): Row[] {
  if (times.length === 0) return [];
  const s = spread(times);
  return (['p50', 'max'] as const).map((stat) => ({
    id: `failover.pause_to_commit.${stat}`,
    value: s[stat],
    unit: 'ms',
    target: null,
    ratio: null,
    met: null,
    conditions:
      `SIGSTOP of the leading coordinator for ${PAUSE_HOLD_MS} ms (its lease TTL and 2 s) to the next checkpoint ` +
      `committed by another coordinator, ${stat}; a paused process still accepts connections, so its lease ` +
      `expires before a standby leads, and the workers must notice the silence of the paused leader; ` +
      `${times.length} pauses after the kills, same setup; per pause: ${times.join(', ')} ms`,
  }));
}

/** The parts of one fail-over, from the new leader's log lines after the kill. */
function parts(entries: readonly FailoverLogEntry[], commit: FailoverLogEntry, killedAtMs: number): FailoverFigures {
  const ofLeader = entries.filter((e) => e.from === commit.from && e.time >= killedAtMs && e.time <= commit.time);
  const first = (msg: string): number => ofLeader.find((e) => e.msg === msg)?.time ?? commit.time;
  const elected = first('elected leader');
  const loaded = Math.max(elected, first('coordinator started'));
  const attaches = ofLeader.filter((e) => e.msg === 'worker attached' && e.jobId === JOB_ID && e.time >= loaded);
  const attached = Math.max(loaded, attaches[WORKER_TASKS.length - 1]?.time ?? loaded);
  return {
    killToCommitMs: commit.time - killedAtMs,
    killToElectedMs: elected - killedAtMs,
    electedToLoadedMs: loaded - elected,
    loadedToAttachedMs: attached - loaded,
    attachedToCommitMs: commit.time - attached,
  };
}

function isCommit(e: FailoverLogEntry): boolean {
  return e.jobId === JOB_ID && e.msg === 'checkpoint completed';
}

function rows(figures: readonly FailoverFigures[], ctx: ScenarioContext): Row[] {
  return failoverRows(figures, {
    setup:
      `${COORDINATORS} coordinator processes (node dist/src/cli/main.js coordinator, default lease TTL and leader ` +
      `probe, heartbeats every 250 ms, timeout 3000 ms) on one etcd and one NATS; the word count (5 tasks in ` +
      `${WORKER_TASKS.length} worker processes, node dist/examples/wordcount/worker.js, given all ` +
      `${COORDINATORS} coordinator addresses), a checkpoint every ${INTERVAL_MS} ms, ${SENTENCES} sentences stored ` +
      `before the start; each kill is a SIGKILL of the coordinator that committed the last checkpoint, which is ` +
      `started again on its address as a standby after the next commit`,
    system: ctx.system,
  });
}

/** Scenario `failover` as `make bench` runs it: with the default options, or the quick ones for `ctx.quick`. */
export const failover: Scenario = (ctx) =>
  failoverScenario(ctx.quick === true ? QUICK_FAILOVER_OPTIONS : DEFAULT_FAILOVER_OPTIONS)(ctx);

if (isMain(import.meta.url)) await runStandalone('failover', failover);
