/**
 * Savepoints: taking one (a checkpoint in which every task stores its
 * whole state, then its manifest stored in etcd outside retention),
 * stopping a job with one, listing and deleting them, and starting a job
 * from one (its manifest mapped onto the new job's tasks and committed as
 * the job's first checkpoint, with the savepoint's id).
 */
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { Savepoint__Output } from '../gen/ckpt/v1/Savepoint.js';
import type { SavepointRef } from '../gen/ckpt/v1/SavepointRef.js';
import type { SavepointSummary__Output } from '../gen/ckpt/v1/SavepointSummary.js';
import type { Checkpoint } from '../core/checkpoint.js';
import { CkptError } from '../core/errors.js';
import { checkCount } from '../core/limits.js';
import type { CheckpointStore, LeaderGuard, StoredJobState } from '../core/ports.js';
import { mapSavepoint } from '../core/savepoint-mapping.js';
import { checkId } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import { sleep } from '../worker-protocol/sleep.js';
import type { JobRuntime } from './job-runtime.js';
import type { LeadershipFence } from './leadership-fence.js';

/** How often a savepoint waiting for pending checkpoints to finish tries again. */
const FREE_POLL_MS = 25;

/** What savepoints work with. */
export interface SavepointDeps {
  store: CheckpointStore;
  fence: LeadershipFence;
  guard: () => LeaderGuard | undefined;
  now: () => number;
  log: Logger;
  /** The runtime of a running job (UNKNOWN_JOB, JOB_CANCELED otherwise, as for triggers). */
  runtime: (jobId: unknown) => JobRuntime;
  cancel: (jobId: string) => Promise<unknown>;
  /** A savepoint of the job was stored or deleted: the pieces it pins change. */
  savepointsChanged: (jobId: string) => Promise<void>;
  /** Throws unless the coordinator runs (it is not stopping). */
  requireRunning: () => void;
}

/** The outcome of `TriggerSavepoint`. */
export interface SavepointResult {
  checkpoint: CheckpointSummary__Output;
  savepoint: SavepointSummary__Output | null;
}

/** Savepoints of every job this coordinator leads. */
export class Savepoints {
  private readonly deps: SavepointDeps;

  constructor(deps: SavepointDeps) {
    this.deps = deps;
  }

  /**
   * Takes a savepoint and waits for it; periodic checkpoints are held back
   * until its record is stored (retention could otherwise drop its
   * manifest first) and, with `stop`, for good: the job is canceled once
   * it is stored, so that nothing is committed past it.
   */
  async trigger(jobId: unknown, stop: boolean): Promise<SavepointResult> {
    this.deps.requireRunning();
    const runtime = this.deps.runtime(jobId);
    const release = runtime.tracker.holdPeriodic();
    let stopped = false;
    try {
      const started = await this.startWhenFree(runtime);
      const checkpoint = await runtime.waitFor(started.id);
      if (checkpoint.state !== 'CHECKPOINT_STATE_COMPLETED') return { checkpoint, savepoint: null };
      const savepoint = await this.store(runtime, checkpoint);
      if (stop) {
        await this.deps.cancel(runtime.jobId);
        stopped = true;
      }
      this.deps.log.info({ jobId: runtime.jobId, checkpointId: checkpoint.checkpointId, stop }, 'savepoint stored');
      return { checkpoint, savepoint: summaryOf(savepoint) };
    } finally {
      if (!stopped) release();
      runtime.arm();
    }
  }

  /**
   * Starts the savepoint's checkpoint once the job has room for it: with
   * periodic ones held back, those pending finish within the policy's
   * timeout, so a savepoint waits for them instead of failing.
   */
  private async startWhenFree(runtime: JobRuntime): Promise<Checkpoint> {
    const deadline = this.deps.now() + runtime.tracker.policy.timeoutMs;
    for (;;) {
      try {
        return await this.deps.fence.run(() => runtime.trigger(true, 'SNAPSHOT_TYPE_SAVEPOINT'));
      } catch (err) {
        if (CkptError.from(err).reason !== 'TOO_MANY_PENDING' || this.deps.now() > deadline) throw err;
        await sleep(FREE_POLL_MS);
      }
    }
  }

  /** The savepoints of a job (any job with records, canceled ones too), oldest first. */
  async list(jobId: unknown): Promise<SavepointSummary__Output[]> {
    this.deps.requireRunning();
    const id = checkId(jobId, 'job_id');
    return (await this.deps.store.listSavepoints(id)).map(summaryOf);
  }

  /** Deletes a savepoint's record; false when there was none. */
  async delete(ref: SavepointRef | null | undefined): Promise<boolean> {
    this.deps.requireRunning();
    const { jobId, checkpointId } = checkRef(ref);
    const deleted = await this.deps.fence.run(() =>
      this.deps.store.deleteSavepoint(jobId, checkpointId, this.deps.guard()),
    );
    if (deleted) {
      this.deps.log.info({ jobId, checkpointId }, 'savepoint deleted');
      await this.deps.savepointsChanged(jobId);
    }
    return deleted;
  }

  /**
   * Creates a job from a savepoint: maps the savepoint onto `spec` (refused
   * before anything is written), creates the job, commits the mapped
   * manifest as its first checkpoint with the savepoint's id, and raises
   * its ids above it. A job that already exists is returned as it is.
   */
  async createJob(
    spec: JobSpec__Output,
    from: SavepointRef,
    allowNonRestoredState: boolean,
  ): Promise<{ job: StoredJobState; created: boolean }> {
    const ref = checkRef(from);
    const savepoint = await this.deps.store.readSavepoint(ref.jobId, ref.checkpointId);
    if (savepoint === undefined) {
      throw new CkptError('UNKNOWN_CHECKPOINT', `job ${ref.jobId} has no savepoint ${ref.checkpointId}`, ref);
    }
    const tasks = mapSavepoint(savepoint, spec, allowNonRestoredState);
    const { store, fence } = this.deps;
    const created = await fence.run(() => store.createJob(spec, this.deps.now(), this.deps.guard()));
    if (!created.created) return created;
    const { job } = created;
    const id = ref.checkpointId;
    const manifest = this.firstManifest(spec.jobId, job.epoch, savepoint, tasks);
    const summary = firstSummary(manifest, this.deps.now());
    await fence.run(() => store.commit({ manifest, summary, subsumedCheckpointIds: [] }, this.deps.guard()));
    await fence.run(() => store.reserveIds(spec.jobId, id + 1, this.deps.guard()));
    this.deps.log.info({ jobId: spec.jobId, from: ref, tasks: tasks.length }, 'job created from a savepoint');
    return {
      job: {
        ...job,
        latestCheckpointId: id,
        latestCheckpointEpoch: job.epoch,
        idFloor: Math.max(job.idFloor, id + 1),
        retainedCheckpointIds: [id],
      },
      created: true,
    };
  }

  private firstManifest(
    jobId: string,
    epoch: number,
    savepoint: Savepoint__Output,
    tasks: Manifest__Output['tasks'],
  ): Manifest__Output {
    const ref = savepoint.ref as { jobId: string; checkpointId: number };
    return {
      jobId,
      checkpointId: ref.checkpointId,
      epoch,
      snapshotType: 'SNAPSHOT_TYPE_SAVEPOINT',
      triggeredAtMs: savepoint.manifest?.triggeredAtMs ?? 0,
      completedAtMs: this.deps.now(),
      tasks,
      fromSavepoint: { jobId: ref.jobId, checkpointId: ref.checkpointId },
    };
  }

  private async store(runtime: JobRuntime, checkpoint: CheckpointSummary__Output): Promise<Savepoint__Output> {
    const { jobId, checkpointId } = checkpoint;
    const manifest = await this.deps.store.readManifest(jobId, checkpointId);
    if (manifest === undefined) {
      const message = `savepoint ${checkpointId} of job ${jobId} completed but its manifest is gone: take it again`;
      throw new CkptError('INTERNAL', message, { jobId, checkpointId, retryable: true });
    }
    const savepoint: Savepoint__Output = {
      ref: { jobId, checkpointId },
      createdAtMs: this.deps.now(),
      spec: runtime.tracker.spec,
      manifest,
    };
    await this.deps.fence.run(() => this.deps.store.putSavepoint(savepoint, this.deps.guard()));
    await this.deps.savepointsChanged(jobId);
    return savepoint;
  }
}

function checkRef(ref: SavepointRef | null | undefined): { jobId: string; checkpointId: number } {
  const jobId = checkId(ref?.jobId, 'savepoint.job_id');
  const checkpointId = checkCount(ref?.checkpointId ?? 0, 'savepoint.checkpoint_id', Number.MAX_SAFE_INTEGER, {
    jobId,
  });
  if (checkpointId === 0) throw new CkptError('MALFORMED', 'savepoint.checkpoint_id is required', { jobId });
  return { jobId, checkpointId };
}

function summaryOf(savepoint: Savepoint__Output): SavepointSummary__Output {
  const tasks = savepoint.manifest?.tasks ?? [];
  return {
    ref: savepoint.ref,
    createdAtMs: savepoint.createdAtMs,
    tasks: tasks.length,
    stateSizeBytes: tasks.reduce((n, t) => n + (t.metrics?.stateSizeBytes ?? 0), 0),
  };
}

/** The summary stored beside a job's first manifest, mapped from a savepoint. */
function firstSummary(manifest: Manifest__Output, nowMs: number): CheckpointSummary__Output {
  return {
    jobId: manifest.jobId,
    checkpointId: manifest.checkpointId,
    epoch: manifest.epoch,
    state: 'CHECKPOINT_STATE_COMPLETED',
    abortReason: 'ABORT_REASON_UNSPECIFIED',
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_SAVEPOINT',
    manual: true,
    triggeredAtMs: manifest.triggeredAtMs,
    finishedAtMs: nowMs,
    totalTasks: manifest.tasks.length,
    acknowledgedTasks: manifest.tasks.length,
    stateSizeBytes: 0,
    persistedBytes: 0,
    maxAlignmentMs: 0,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 0,
  };
}
