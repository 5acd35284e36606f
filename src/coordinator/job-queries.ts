/**
 * The read-only views of a coordinator's jobs and checkpoints, as the
 * query service and `GetJob` show them: jobs (quarantined ones with their
 * reason), and checkpoints merged from memory (pending and remembered) and
 * etcd (retained summaries and manifests). Nothing here changes a job.
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import { CkptError } from '../core/errors.js';
import { checkCount } from '../core/limits.js';
import type { CheckpointStore } from '../core/ports.js';
import { checkId } from '../core/validate.js';
import type { JobRegistry } from './job-registry.js';
import type { JobRuntime } from './job-runtime.js';

const ATTEMPT_ON_WIRE = {
  resuming: 'JOB_ATTEMPT_RESUMING',
  restoring: 'JOB_ATTEMPT_RESTORING',
  running: 'JOB_ATTEMPT_RUNNING',
} as const;

/** A job as `GetJob`, `ListJobs`, `SubmitJob` and `CancelJob` show it. */
export function jobInfo(runtime: JobRuntime): JobInfo__Output {
  const t = runtime.tracker;
  return {
    spec: t.spec,
    state: t.state,
    epoch: t.epoch,
    latestCheckpointId: t.latestCheckpointId,
    checkpointing: t.checkpointing,
    attachedTasks: t.attachedTasks,
    createdAtMs: t.createdAtMs,
    readyTasks: t.readyTasks,
    attempt: ATTEMPT_ON_WIRE[t.attempt],
    restorePoint: t.restorePoint ?? null,
    quarantineReason: '',
    intervalMs: t.interval.intervalMs,
    intervalReason: t.interval.reason,
  };
}

/** A quarantined job as `GetJob` and `ListJobs` show it. */
function quarantinedInfo(jobId: string, reason: string): JobInfo__Output {
  return {
    spec: { jobId, tasks: [], policy: null, labels: {} },
    state: 'JOB_STATE_QUARANTINED',
    epoch: 0,
    latestCheckpointId: 0,
    checkpointing: 'JOB_CHECKPOINTING_UNSPECIFIED',
    attachedTasks: 0,
    createdAtMs: 0,
    readyTasks: 0,
    attempt: 'JOB_ATTEMPT_UNSPECIFIED',
    restorePoint: null,
    quarantineReason: reason,
    intervalMs: 0,
    intervalReason: '',
  };
}

/** The queries over one coordinator's jobs. */
export class JobQueries {
  private readonly jobs: JobRegistry;
  private readonly store: CheckpointStore;

  constructor(jobs: JobRegistry, store: CheckpointStore) {
    this.jobs = jobs;
    this.store = store;
  }

  /** A job, or a quarantined one with its reason. */
  getJob(jobId: unknown): JobInfo__Output {
    const id = checkId(jobId, 'job_id');
    const quarantined = this.jobs.quarantineReason(id);
    if (quarantined !== undefined) return quarantinedInfo(id, quarantined);
    return jobInfo(this.jobs.get(id));
  }

  /** Jobs (quarantined ones too) ordered by id, after `afterJobId`. */
  listJobs(
    afterJobId: string,
    limit: number,
    visible: (jobId: string) => boolean = () => true,
  ): { jobs: JobInfo__Output[]; more: boolean } {
    const ids = this.jobs
      .jobIds()
      .filter((id) => id > afterJobId && visible(id))
      .sort();
    return { jobs: ids.slice(0, limit).map((id) => this.getJob(id)), more: ids.length > limit };
  }

  /**
   * Pending, remembered and retained checkpoints of a job, and those its
   * statistics history keeps, newest first.
   */
  async listCheckpoints(jobId: unknown): Promise<CheckpointSummary__Output[]> {
    const runtime = this.jobs.get(jobId);
    const inMemory = runtime.tracker.known().map((c) => c.summary());
    const stored = await this.store.listSummaries(runtime.jobId);
    const byId = new Map<number, CheckpointSummary__Output>();
    for (const r of runtime.statistics.stats.stored().history)
      if (r.summary !== null) byId.set(r.summary.checkpointId, r.summary);
    for (const s of stored) byId.set(s.checkpointId, s);
    for (const s of inMemory)
      if (!byId.has(s.checkpointId) || s.state !== 'CHECKPOINT_STATE_COMPLETED') byId.set(s.checkpointId, s);
    return [...byId.values()].sort((a, b) => b.checkpointId - a.checkpointId);
  }

  /**
   * One checkpoint with its per-task figures, and its manifest when it is
   * completed and retained.
   */
  async getCheckpoint(job: unknown, id: unknown): Promise<CheckpointDetails> {
    const runtime = this.jobs.get(job);
    const jobId = runtime.jobId;
    const checkpointId = checkCount(id ?? 0, 'checkpoint_id', Number.MAX_SAFE_INTEGER, { jobId });
    const manifest = await this.store.readManifest(jobId, checkpointId);
    const pending = runtime.tracker.find(checkpointId);
    const recorded = runtime.statistics.stats.find(checkpointId);
    const summary =
      pending?.summary() ??
      recorded?.summary ??
      (manifest === undefined
        ? undefined
        : (await this.store.listSummaries(jobId)).find((s) => s.checkpointId === checkpointId));
    if (summary === undefined)
      throw new CkptError(
        'UNKNOWN_CHECKPOINT',
        `job ${jobId} has no checkpoint ${checkpointId} that is pending, remembered, retained or in its statistics`,
        { jobId, checkpointId },
      );
    const tasks = taskDetails(pending?.status === 'PENDING' ? pending.taskFigures() : recorded?.tasks, manifest);
    return manifest === undefined ? { summary, tasks } : { summary, manifest, tasks };
  }

  /** The job's checkpoint statistics, its pending checkpoints counted in. */
  checkpointStatistics(jobId: unknown): CheckpointStatistics__Output {
    const runtime = this.jobs.get(jobId);
    const pending = runtime.tracker
      .pendingCheckpoints()
      .map((c) => c.summary())
      .sort((a, b) => b.checkpointId - a.checkpointId);
    return runtime.statistics.stats.view(runtime.jobId, pending);
  }
}

/** One checkpoint as `GetCheckpoint` shows it. */
export interface CheckpointDetails {
  summary: CheckpointSummary__Output;
  manifest?: Manifest__Output;
  tasks: TaskCheckpointStatistics__Output[];
}

/**
 * Per-task figures: those kept (pending acknowledgements or the
 * statistics), else the manifest's (without acknowledgement times).
 */
function taskDetails(
  kept: TaskCheckpointStatistics__Output[] | undefined,
  manifest: Manifest__Output | undefined,
): TaskCheckpointStatistics__Output[] {
  if (kept !== undefined && kept.length > 0) return kept;
  return (manifest?.tasks ?? []).map((t) => ({
    taskId: t.taskId,
    acknowledgedAtMs: 0,
    metrics: t.metrics,
    snapshotType: t.snapshotType,
  }));
}
