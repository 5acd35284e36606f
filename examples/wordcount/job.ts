/**
 * The word count job: sentences from a JetStream stream are split into
 * words by two source tasks, counted by word in two tasks (partitioned by
 * a hash of the word, one NATS subject per edge), and made visible by an
 * exactly-once sink in another JetStream stream.
 *
 *   SENTENCES (sentences.0) ─▶ split-0 ─┬─▶ count-0 ─┐
 *   SENTENCES (sentences.1) ─▶ split-1 ─┴─▶ count-1 ─┴─▶ sink ─▶ WORDCOUNT (wordcount.out)
 */
import type { JobSpec } from '../../src/index.js';

/** Stream and subjects of the input. */
export const INPUT_STREAM = 'SENTENCES';
export const INPUT_SUBJECTS = ['sentences.0', 'sentences.1'] as const;
/** Stream and subject the sink writes to. */
export const OUTPUT_STREAM = 'WORDCOUNT';
export const OUTPUT_SUBJECT = 'wordcount.out';

/** The job id of the reference word count, which reads and writes the streams above. */
export const DEFAULT_JOB_ID = 'wordcount';

/** Where one word count job reads its sentences and writes its counts. */
export interface WordCountIo {
  inputStream: string;
  /** The subjects of the input stream, as a stream's subject filter (one wildcard token). */
  inputFilter: string;
  /** The input subject split task `partition` reads. */
  inputSubject(partition: number): string;
  outputStream: string;
  outputSubject: string;
}

/**
 * The streams and subjects of word count job `jobId`: the reference job
 * (`wordcount`) uses `SENTENCES` and `WORDCOUNT`; any other job streams of
 * its own, named after it, so that several word counts can run side by
 * side on one NATS (job ids are letters, digits, `_` and `-`, all valid in
 * stream names and subject tokens).
 */
export function wordCountIo(jobId: string): WordCountIo {
  if (jobId === DEFAULT_JOB_ID) {
    return {
      inputStream: INPUT_STREAM,
      inputFilter: 'sentences.*',
      inputSubject,
      outputStream: OUTPUT_STREAM,
      outputSubject: OUTPUT_SUBJECT,
    };
  }
  return {
    inputStream: `${INPUT_STREAM}_${jobId}`,
    inputFilter: `sentences-${jobId}.*`,
    inputSubject: (partition) => `sentences-${jobId}.${partition}`,
    outputStream: `${OUTPUT_STREAM}_${jobId}`,
    outputSubject: `wordcount-${jobId}.out`,
  };
}

/** Which tasks each of the three worker processes runs. */
export const WORKER_TASKS: readonly (readonly string[])[] = [['split-0', 'count-0'], ['split-1', 'count-1'], ['sink']];

/** A language a word count worker process is written in. */
export type WorkerLang = 'ts' | 'go';

/** One worker process of a run: its language and its tasks. */
export interface WorkerPlan {
  lang: WorkerLang;
  tasks: readonly string[];
}

/** The reference workers: the three of `WORKER_TASKS`, in TypeScript. */
export const TS_WORKERS: readonly WorkerPlan[] = WORKER_TASKS.map((tasks) => ({ lang: 'ts', tasks }));

/**
 * The mixed-language workers: both split tasks in one Go worker
 * (go/src/ckpt/examples/wordcount-split), the count tasks and the sink in
 * TypeScript workers. Records cross languages on every split-count edge.
 */
export const GO_TS_WORKERS: readonly WorkerPlan[] = [
  { lang: 'go', tasks: ['split-0', 'split-1'] },
  { lang: 'ts', tasks: ['count-0', 'count-1'] },
  { lang: 'ts', tasks: ['sink'] },
];

/**
 * The workers of a `LANGS` value (`make demo LANGS=...`): `ts` (the
 * default) or `go,ts` (in either order). Throws an error naming the
 * accepted values for anything else.
 */
export function workersOfLangs(langs: string | undefined): readonly WorkerPlan[] {
  const set = [...new Set((langs ?? 'ts').split(',').map((l) => l.trim().toLowerCase()))].sort().join(',');
  if (set === 'ts') return TS_WORKERS;
  if (set === 'go,ts') return GO_TS_WORKERS;
  throw new Error(
    `LANGS=${langs ?? ''}: the word count runs with LANGS=ts (TypeScript workers) or LANGS=go,ts (Go split tasks)`,
  );
}

/** How many split and count tasks the job has; there is always one sink. */
export interface WordCountShape {
  /** Split tasks; split `i` reads the input subject `inputSubject(i)`. */
  splits: number;
  /** Count tasks, each reading every split. */
  counts: number;
}

/** The reference pipeline: two splits and two counts, five tasks. */
export const REFERENCE_SHAPE: WordCountShape = { splits: 2, counts: 2 };

/** The input subject split task `partition` reads. */
export function inputSubject(partition: number): string {
  return `sentences.${partition}`;
}

/** The job spec, with a checkpoint every `intervalMs` (0: manual triggers only). */
export function wordCountSpec(jobId: string, intervalMs: number, shape = REFERENCE_SHAPE): JobSpec {
  const { splits, counts } = taskIds(shape);
  return {
    jobId,
    tasks: [
      ...splits.map((taskId) => ({ taskId, labels: { operator: 'split' } })),
      ...counts.map((taskId) => ({ taskId, inputs: splits, labels: { operator: 'count' } })),
      { taskId: 'sink', inputs: counts, labels: { operator: 'sink' } },
    ],
    policy: { intervalMs, timeoutMs: 30_000, retained: 3, tolerableFailures: -1 },
  };
}

/** The task ids of a job of `shape`, dealt round-robin to `workers` worker processes. */
export function workerTasks(shape: WordCountShape, workers: number): string[][] {
  const { splits, counts } = taskIds(shape);
  const out = Array.from({ length: workers }, (): string[] => []);
  [...splits, ...counts, 'sink'].forEach((taskId, i) => out[i % workers]?.push(taskId));
  return out;
}

function taskIds(shape: WordCountShape): { splits: string[]; counts: string[] } {
  return {
    splits: Array.from({ length: shape.splits }, (_, i) => `split-${i}`),
    counts: Array.from({ length: shape.counts }, (_, i) => `count-${i}`),
  };
}
