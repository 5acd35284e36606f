/**
 * The jobs the coordinator benchmarks run, and the calls they make on them:
 * submit, wait until every task runs, trigger a checkpoint and time it.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { CoordinatorClient } from '../../src/client/index.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';

/** Time every task of a job has to attach and start. */
const RUNNING_TIMEOUT_MS = 60_000;
/** Deadline of a TriggerCheckpoint call that waits for the outcome. */
const TRIGGER_DEADLINE_MS = 60_000;

/**
 * A job of `tasks` source tasks and no edges: a checkpoint is a trigger to
 * every task and one acknowledgement from each. Manual triggers only, one
 * checkpoint retained.
 */
export function sourcesJob(jobId: string, tasks: number, policy: JobSpec['policy'] = {}): JobSpec {
  return {
    jobId,
    tasks: Array.from({ length: tasks }, (_, i) => ({ taskId: `t${String(i).padStart(5, '0')}` })),
    policy: { retained: 1, timeoutMs: 60_000, ...policy },
  };
}

/** Resolves once the job runs with all `tasks` attached; rejects after a minute. */
export async function waitRunning(client: CoordinatorClient, jobId: string, tasks: number): Promise<void> {
  const until = Date.now() + RUNNING_TIMEOUT_MS;
  for (;;) {
    const { job } = await client.getJob({ jobId });
    if (job?.attempt === 'JOB_ATTEMPT_RUNNING' && job.attachedTasks === tasks) return;
    if (Date.now() > until) {
      throw new Error(`job ${jobId} not running after ${RUNNING_TIMEOUT_MS} ms: ${JSON.stringify(job)}`);
    }
    await delay(20);
  }
}

/** One checkpoint, triggered and waited for, as the caller saw it. */
export interface TimedCheckpoint {
  /** From sending TriggerCheckpoint(wait) to its reply, in ms. */
  ms: number;
  summary: CheckpointSummary__Output;
}

/** Triggers a checkpoint of `jobId`, waits until it is committed; throws unless it completed. */
export async function timedCheckpoint(client: CoordinatorClient, jobId: string): Promise<TimedCheckpoint> {
  const started = performance.now();
  const { checkpoint } = await client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: TRIGGER_DEADLINE_MS });
  const ms = performance.now() - started;
  if (checkpoint?.state !== 'CHECKPOINT_STATE_COMPLETED') {
    const why =
      checkpoint === null ? 'no summary' : `${checkpoint.state} ${checkpoint.abortReason} ${checkpoint.abortMessage}`;
    throw new Error(`checkpoint of job ${jobId} did not complete: ${why}`);
  }
  return { ms, summary: checkpoint };
}
