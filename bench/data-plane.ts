/**
 * Scenario 4, data-plane overhead: the reference word count's records per
 * second, and per CPU-second, on ckpt with a checkpoint every 1 s and
 * every 100 ms against none (policy `intervalMs` 0), and ckpt without
 * checkpoints against the same word count written on nats.js alone
 * (bench/lib/bare-wordcount.ts); and the coordinator's CPU time per
 * checkpoint.
 *
 * Every run reads the same corpus, stored in a JetStream stream of its own
 * before it (untimed; both of its streams are deleted after it, so no run
 * reads a stream or consumers left by another), from its first message,
 * with three worker processes, and is timed
 * from its start (ckpt: the coordinator's "every task ready: job started";
 * bare: the go message once every process has subscribed) to the moment
 * the sink's last update is stored (the output stream's `last_ts`) with
 * every update visible. On ckpt the sink publishes only what a completed
 * checkpoint covers, so once both sources have read all input a
 * checkpoint is triggered at every poll until the output is complete, in
 * every ckpt mode: the runs without checkpoints publish their whole
 * output at the end, and every run does the same work. That end is not
 * overlapped with the reading, as the interval modes' publications are,
 * which favours them; the rows' conditions also give each run's read
 * phase alone.
 *
 * Each round runs every mode once, in rotated order; the targets hold the
 * per-round ratios (median over the rounds), which the machine's drift
 * between rounds does not move. After each ckpt run, the job stays up
 * with its workers idle for a short window, in which the coordinator's
 * CPU time is read: with the pipeline idle, what remains is the cost of
 * running a job and of its checkpoints.
 *
 *   make build && node --import tsx bench/data-plane.ts [--quick]
 */
import { sentences, words } from '../examples/wordcount/corpus.js';
import { MODES, timeRun, type RunFigures } from './lib/data-plane-runs.js';
import { dataPlaneRows } from './lib/data-plane-rows.js';
import type { Scenario } from './lib/row.js';
import { isMain, runStandalone } from './standalone.js';
import { startBenchStack } from './wordcount-stack.js';

/** How the scenario runs. */
export interface DataPlaneOptions {
  /** Sentences in the corpus every run reads. */
  sentences: number;
  /** Runs per mode; each round runs every mode once, in a rotated order. */
  rounds: number;
}

/** The full run's options: about 5 minutes on 2 cores. */
export const DEFAULT_DATA_PLANE_OPTIONS: DataPlaneOptions = { sentences: 25_000, rounds: 5 };
/** A smoke run's options (`ctx.quick`). */
export const QUICK_DATA_PLANE_OPTIONS: DataPlaneOptions = { sentences: 5_000, rounds: 1 };

/** Scenario 4 with `options`. */
export function dataPlaneScenario(options: DataPlaneOptions): Scenario {
  return async (ctx) => {
    const stack = await startBenchStack(ctx, ['--heartbeat-interval-ms', '250', '--heartbeat-timeout-ms', '3000']);
    try {
      const text = sentences(options.sentences);
      const corpus = { sentences: text.length, updates: text.reduce((n, s) => n + words(s).length, 0) };
      ctx.log(`${corpus.sentences} sentences (${corpus.updates} words), stored afresh before each run`);
      const runs: RunFigures[] = [];
      for (let round = 0; round < options.rounds; round++) {
        for (const mode of rotate(MODES, round)) runs.push(await timeRun(stack, ctx, text, corpus, mode, round));
      }
      return dataPlaneRows(runs, corpus, options.rounds, ctx.system);
    } finally {
      await stack.stop([]);
    }
  };
}

/** Scenario 4 as `make bench` runs it: with the default options, or the quick ones for `ctx.quick`. */
export const dataPlane: Scenario = (ctx) =>
  dataPlaneScenario(ctx.quick === true ? QUICK_DATA_PLANE_OPTIONS : DEFAULT_DATA_PLANE_OPTIONS)(ctx);

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

if (isMain(import.meta.url)) await runStandalone('data-plane', dataPlane);
