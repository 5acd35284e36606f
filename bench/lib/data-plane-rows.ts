/**
 * The data-plane scenario's rows: per mode the median records/s and
 * records/CPU-s; the paired ratios (each run against the same round's
 * baseline, median over the rounds) that carry the targets; and the
 * coordinator's CPU time per checkpoint.
 */
import { INPUT_SUBJECTS, WORKER_TASKS } from '../../examples/wordcount/job.js';
import {
  BARE,
  IDLE_WINDOW_MS,
  MODES,
  NONE,
  POLL_MS,
  recordsPerCpuS,
  recordsPerS,
  type Corpus,
  type Mode,
  type RunFigures,
} from './data-plane-runs.js';
import { median } from './percentiles.js';
import type { Row } from './row.js';
import { coresText, type SystemFacts } from './system.js';

/** A ratio of two modes, the share of the baseline's figure the other must keep when it has a target. */
interface Pairing {
  id: string;
  mode: Mode;
  baseline: Mode;
  /** The least ratio allowed; undefined: reported only. */
  target?: number;
}

const PAIRINGS: readonly Pairing[] = [
  { id: 'sdk_none_over_bare', mode: NONE, baseline: BARE, target: 0.5 },
  { id: 'interval_1000ms_over_none', mode: MODES[2] as Mode, baseline: NONE, target: 0.98 },
  { id: 'interval_100ms_over_none', mode: MODES[3] as Mode, baseline: NONE, target: 0.9 },
];

/** One figure of a run, with the words the rows use for it. */
interface Figure {
  name: 'records_per_s' | 'records_per_cpu_s';
  unit: string;
  of: (r: RunFigures) => number;
  /** What the figure is and how it was measured. */
  conditions: string;
}

/** Every row of the scenario. */
export function dataPlaneRows(runs: readonly RunFigures[], corpus: Corpus, rounds: number, system: SystemFacts): Row[] {
  const common = commonConditions(runs, corpus, rounds, system);
  const figures: Figure[] = [
    {
      name: 'records_per_s',
      unit: 'records/s',
      of: (r) => recordsPerS(r, corpus),
      conditions: `records = input sentences per second of wall time, from the start to the whole output visible; ${common}`,
    },
    {
      name: 'records_per_cpu_s',
      unit: 'records/CPU-s',
      of: (r) => recordsPerCpuS(r, corpus),
      conditions:
        `the same runs per CPU-second instead of per second: input sentences divided by the CPU time (user + ` +
        `system, /proc/<pid>/stat, 10 ms ticks) that the 3 worker processes, the coordinator (idle in the bare ` +
        `runs), nats-server and etcd used from the start to the whole output visible; all of them share the ` +
        `${coresText(system)}, so on a CPU-bound machine this is the throughput per core, and it does not depend on ` +
        `whether a mode's publications overlap its reading (the benchmark's own polling of JetStream, every ` +
        `${POLL_MS} ms, is in nats-server's share); ${common}`,
    },
  ];
  return [...figures.flatMap((f) => [...modeRows(runs, f), ...pairedRows(runs, f)]), cpuRow(runs)];
}

/** Per mode, the median of the figure over its runs; reported only. */
function modeRows(runs: readonly RunFigures[], figure: Figure): Row[] {
  return MODES.map((mode) => {
    const values = runs.filter((r) => r.mode === mode).map(figure.of);
    const mid = median(values);
    const spread = values.length > 1 ? (Math.max(...values) - Math.min(...values)) / mid : 0;
    return {
      id: `dataplane.${figure.name}.${mode.id}`,
      value: Math.round(mid),
      unit: figure.unit,
      target: null,
      ratio: null,
      met: null,
      conditions:
        `${mode.id}, median of ${values.length} runs (${values.map(Math.round).join('/')}; spread ` +
        `(max - min) / median ${spread.toFixed(2)}); ${figure.conditions}`,
    };
  });
}

/** Per pairing, the median over the rounds of the mode's figure ÷ its baseline's in the same round. */
function pairedRows(runs: readonly RunFigures[], figure: Figure): Row[] {
  return PAIRINGS.map((p) => {
    const ratios = roundRatios(runs, p, figure);
    const value = round3(median(ratios));
    const target = p.target ?? null;
    const bound = target === null ? 'no target' : `target at least ${target}`;
    return {
      id: `dataplane.${figure.name}.${p.id}`,
      value,
      unit: 'ratio',
      target,
      ratio: value,
      met: target === null ? null : value >= target,
      conditions:
        `${p.mode.id} ÷ ${p.baseline.id} ${figure.unit}, paired within each round (the machine's speed drifts ` +
        `between rounds), median over the rounds of the per-round ratios (${ratios.map((x) => x.toFixed(3)).join('/')}); ` +
        `${bound}; ${figure.conditions}`,
    };
  });
}

/** For each round that has both runs of `pairing`, the mode's figure over the baseline's. */
function roundRatios(runs: readonly RunFigures[], pairing: Pairing, figure: Figure): number[] {
  return runs
    .filter((r) => r.mode === pairing.mode)
    .flatMap((r) => {
      const base = runs.find((b) => b.mode === pairing.baseline && b.round === r.round);
      return base === undefined ? [] : [figure.of(r) / figure.of(base)];
    });
}

/** What every row of the scenario shares: the corpus, the processes, the timing and each run's details. */
function commonConditions(runs: readonly RunFigures[], corpus: Corpus, rounds: number, system: SystemFacts): string {
  const perMode = (text: (r: RunFigures) => string): string =>
    MODES.map(
      (m) =>
        `${m.id} ${runs
          .filter((r) => r.mode === m)
          .map(text)
          .join('/')}`,
    ).join(', ');
  const ckpt = MODES.filter((m) => m !== BARE);
  return (
    `${corpus.sentences} sentences (${corpus.updates} words, one sink update each) stored afresh in a JetStream ` +
    `stream of the run's own before each run (untimed; its streams deleted after it) and read from the first ` +
    `message; 3 worker processes [${WORKER_TASKS.map((t) => t.join(', ')).join('] [')}], ` +
    `a coordinator child process, one ${system.etcd} and one ${system.nats}, ${coresText(system)}; modes: ` +
    `bare = the same topology on nats.js alone (bench/lib/bare-wordcount.ts: the same ordered consumers and pull ` +
    `batch, on nats-server before 2.10 reading every subject and skipping the other source's as the SDK's source ` +
    `does there, words partitioned over the counts by FNV-1a as the SDK's router does, core NATS edges without headers, ` +
    `the sink storing each update as it arrives with up to 256 acknowledgements outstanding; no checkpoints, no ` +
    `exactly-once), timed from its go message once every process has subscribed; ${ckpt.map((m) => m.id).join(', ')} = ` +
    `the reference word count on ckpt (examples/wordcount, compiled, plain node) with checkpoint interval 0 (none), ` +
    `1000 ms and 100 ms, timed from the coordinator's "every task ready: job started"; every run ends at the last ` +
    `sink update stored (output stream last_ts) with all updates visible exactly once; on ckpt the sink publishes ` +
    `only what a completed checkpoint covers, so once both sources have read all input a checkpoint is triggered ` +
    `every ${POLL_MS} ms until the output is complete, in every ckpt mode: the runs without checkpoints publish ` +
    `their whole output at that end, not overlapped with the reading, which favours the interval modes; ` +
    `${rounds} rounds, each running every mode once in rotated order on fresh worker processes; ` +
    `records/s per run (* a source's consumer was re-created): ` +
    `${perMode((r) => `${Math.round(recordsPerS(r, corpus))}${r.consumers > INPUT_SUBJECTS.length ? '*' : ''}`)}; ` +
    `records/CPU-s per run: ${perMode((r) => String(Math.round(recordsPerCpuS(r, corpus))))}; ` +
    `records/s of the read phase alone (until the sources were seen done): ` +
    `${perMode((r) => String(Math.round(corpus.sentences / (r.readMs / 1000))))}; ` +
    `ckpt checkpoints completed per run and their median duration: ` +
    `${ckpt
      .map(
        (m) =>
          `${m.id} ${runs
            .filter((r) => r.mode === m)
            .map((r) => `${r.checkpointMs.length}@${median(r.checkpointMs)}ms`)
            .join('/')}`,
      )
      .join(', ')}`
  );
}

/** The coordinator's CPU time per checkpoint, from the idle windows after the ckpt runs. */
function cpuRow(runs: readonly RunFigures[]): Row {
  const windows = runs.flatMap((r) => (r.idle === undefined ? [] : [r.idle]));
  const fit = cpuPerCheckpoint(windows);
  const checkpoints = windows.reduce((n, w) => n + w.checkpoints, 0);
  return {
    id: 'dataplane.coordinator_cpu_per_checkpoint',
    value: round3(fit.perCheckpointMs),
    unit: 'ms/checkpoint',
    target: null,
    ratio: null,
    met: null,
    conditions:
      `the coordinator child's CPU time (user + system, /proc/<pid>/stat, 10 ms ticks) in a ${IDLE_WINDOW_MS} ms window ` +
      `after each of the ${windows.length} ckpt runs of the records/s rows, the job up and its 3 workers idle; least-squares fit ` +
      `CPU = a × window + b × checkpoints completed in it over all windows (${checkpoints} checkpoints of 5 tasks, ` +
      `one etcd commit each), b reported; a = ${round3(fit.perSecondMs)} ms/s (heartbeats of 3 workers every 250 ms, timers)`,
  };
}

/**
 * Least squares of CPU time on window length and checkpoints: the cost of
 * a checkpoint, with the cost of just running a job separated out.
 */
function cpuPerCheckpoint(windows: ReadonlyArray<NonNullable<RunFigures['idle']>>): {
  perCheckpointMs: number;
  perSecondMs: number;
} {
  let [ww, wc, cc, wy, cy] = [0, 0, 0, 0, 0];
  for (const { cpuMs, wallMs, checkpoints } of windows) {
    const w = wallMs / 1000;
    ww += w * w;
    wc += w * checkpoints;
    cc += checkpoints * checkpoints;
    wy += w * cpuMs;
    cy += checkpoints * cpuMs;
  }
  const det = ww * cc - wc * wc;
  return { perCheckpointMs: (ww * cy - wc * wy) / det, perSecondMs: (cc * wy - wc * cy) / det };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
