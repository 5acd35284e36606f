/**
 * The jobs the scenarios run, and checks on reports that several
 * scenarios share.
 */
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';
import type { Behaviour } from './behaviours.js';
import { ScenarioFailure, type ScenarioRun, type SuiteJob } from './harness.js';

/** Options of the reference pipeline. */
export interface PipelineOptions {
  mode?: CheckpointPolicy['mode'];
  intervalMs?: number;
  rate?: number;
  limit?: number;
  policy?: CheckpointPolicy;
  /** Extra fields of a task's behaviour, by task id. */
  extra?: Record<string, Partial<Behaviour>>;
}

/** Keys of the pipeline's sources: enough that both sums get some (FNV-1a of short decimal keys clusters). */
export const PIPELINE_KEYS = 64;

/** The worker processes of the reference pipeline and their tasks. */
export const PIPELINE_WORKERS: Record<string, string[]> = {
  w1: ['src-0', 'sum-0'],
  w2: ['src-1', 'sum-1', 'sink'],
};

/**
 * The reference pipeline: two counting sources, each feeding both keyed
 * sums (partitioned by key), both sums feeding one summing sink.
 */
export function pipeline(options: PipelineOptions = {}): SuiteJob {
  const source = (id: string): Behaviour & { inputs: string[] } => ({
    kind: 'source',
    rate: options.rate ?? 500,
    limit: options.limit ?? 0,
    keys: PIPELINE_KEYS,
    inputs: [],
    ...(options.extra?.[id] as object),
  });
  const task = (id: string, kind: 'sum' | 'sink', inputs: string[]): Behaviour & { inputs: string[] } => ({
    kind,
    inputs,
    ...(options.extra?.[id] as object),
  });
  return {
    tasks: {
      'src-0': source('src-0'),
      'src-1': source('src-1'),
      'sum-0': task('sum-0', 'sum', ['src-0', 'src-1']),
      'sum-1': task('sum-1', 'sum', ['src-0', 'src-1']),
      sink: task('sink', 'sink', ['sum-0', 'sum-1']),
    },
    policy: {
      intervalMs: options.intervalMs ?? 300,
      mode: options.mode ?? 'CHECKPOINT_MODE_ALIGNED',
      timeoutMs: 10_000,
      tolerableFailures: -1,
      ...options.policy,
    },
  };
}

/** Starts one coordinator, submits `job` and starts the pipeline's workers (their snapshots in `state`). */
export async function startPipeline(
  s: ScenarioRun,
  job: SuiteJob = pipeline(),
  state: 'file' | 'nats-obj' = 'file',
): Promise<void> {
  await s.startCoordinators(1);
  await s.submit(job);
  for (const [label, tasks] of Object.entries(PIPELINE_WORKERS)) {
    s.worker(label, tasks, { objectStore: state === 'nats-obj' });
  }
}

/** Fails unless every task sent at least `min` committed reports. */
export function requireCommittedReports(s: ScenarioRun, min = 1): void {
  const lacking = s.graph
    .map((t) => t.taskId)
    .filter((id) => s.reports.filter((r) => r.task === id && r.event === 'committed').length < min);
  if (lacking.length > 0) {
    throw new ScenarioFailure(`no ${min} committed reports of ${lacking.join(', ')} (${s.describe()})`);
  }
}

/** Waits until every task reported committed checkpoints, at least `min` each. */
export async function waitCommittedReports(s: ScenarioRun, min: number, timeoutMs = 20_000): Promise<void> {
  await s.waitFor(`${min} committed reports of every task`, timeoutMs, () =>
    s.graph.every((t) => s.reports.filter((r) => r.task === t.taskId && r.event === 'committed').length >= min),
  );
}

/** Fails if the history shows a checkpoint aborted for one of `reasons`. */
export async function forbidAborts(s: ScenarioRun, reasons: readonly string[], sinceId = 0): Promise<void> {
  const bad = (await s.history()).filter(
    (c) => c.checkpointId > sinceId && c.state === 'CHECKPOINT_STATE_ABORTED' && reasons.includes(c.abortReason),
  );
  if (bad.length > 0) {
    const list = bad.map((c) => `${c.checkpointId} (${c.abortReason}: ${c.abortMessage})`).join(', ');
    throw new ScenarioFailure(`checkpoints aborted: ${list}`);
  }
}

/** Fails unless every task's restored report of `epoch` names checkpoint `checkpointId`. */
export async function requireRestoredFrom(s: ScenarioRun, epoch: number, checkpointId: number): Promise<void> {
  const reports = await s.waitRestored(epoch);
  const wrong = reports.filter((r) => r.checkpoint !== checkpointId);
  if (wrong.length > 0) {
    const list = wrong.map((r) => `${r.task} from ${r.checkpoint}`).join(', ');
    throw new ScenarioFailure(`in epoch ${epoch} tasks restored from another checkpoint than ${checkpointId}: ${list}`);
  }
}
