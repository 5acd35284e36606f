/**
 * The word count job: sentences from a JetStream stream are split into
 * words by two source tasks, counted by word in two tasks (partitioned by
 * a hash of the word, one NATS subject per edge), and made visible by an
 * exactly-once sink in another JetStream stream.
 *
 *   SENTENCES (sentences.0) ─▶ split-0 ─┬─▶ count-0 ─┐
 *   SENTENCES (sentences.1) ─▶ split-1 ─┴─▶ count-1 ─┴─▶ sink ─▶ WORDCOUNT (wordcount.out)
 */
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';

/** Stream and subjects of the input. */
export const INPUT_STREAM = 'SENTENCES';
export const INPUT_SUBJECTS = ['sentences.0', 'sentences.1'] as const;
/** Stream and subject the sink writes to. */
export const OUTPUT_STREAM = 'WORDCOUNT';
export const OUTPUT_SUBJECT = 'wordcount.out';

/** Which tasks each of the three worker processes runs. */
export const WORKER_TASKS: readonly (readonly string[])[] = [['split-0', 'count-0'], ['split-1', 'count-1'], ['sink']];

/** The job spec, with a checkpoint every `intervalMs`. */
export function wordCountSpec(jobId: string, intervalMs: number): JobSpec {
  return {
    jobId,
    tasks: [
      { taskId: 'split-0', labels: { operator: 'split' } },
      { taskId: 'split-1', labels: { operator: 'split' } },
      { taskId: 'count-0', inputs: ['split-0', 'split-1'], labels: { operator: 'count' } },
      { taskId: 'count-1', inputs: ['split-0', 'split-1'], labels: { operator: 'count' } },
      { taskId: 'sink', inputs: ['count-0', 'count-1'], labels: { operator: 'sink' } },
    ],
    policy: { intervalMs, timeoutMs: 30_000, retained: 3, tolerableFailures: -1 },
  };
}
