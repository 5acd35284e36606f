/**
 * The calls that change a job as a whole: submitting it (its spec checked,
 * a large one in turns of the event loop of its own, compared with a job
 * of the same id, stored in etcd fresh or from a savepoint, registered and
 * started; the same spec again is a no-op, another one JOB_EXISTS),
 * canceling it, and restoring it to a retained checkpoint.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { SavepointRef } from '../gen/ckpt/v1/SavepointRef.js';
import { CkptError } from '../core/errors.js';
import { checkCount, type Limits } from '../core/limits.js';
import { validateJobSpec } from '../core/validate.js';
import { sameSpec } from '../store/job-checks.js';
import { specBytes } from '../store/spec-encoding.js';
import { jobInfo } from './job-queries.js';
import type { JobRegistry } from './job-registry.js';
import type { RollBack } from './job-rollback.js';
import type { SavepointDeps, Savepoints } from './savepoints.js';

/** Tasks from which a submitted spec is checked, stored and registered in separate turns of the event loop. */
const LARGE_SPEC_TASKS = 10_000;

/** What the changes of a job work with: what savepoints work with, and more. */
export interface JobChangesDeps extends Pick<
  SavepointDeps,
  'store' | 'fence' | 'guard' | 'now' | 'log' | 'requireRunning'
> {
  limits: Limits;
  jobs: JobRegistry;
  savepoints: Savepoints;
  /** A job was canceled: its state cleanup and its sessions are told. */
  canceled: (jobId: string) => void;
}

/** Where a job starts from: a savepoint, and whether its state may leave tasks unrestored. */
export interface SubmitFrom {
  savepoint: SavepointRef | null | undefined;
  allowNonRestoredState: boolean;
}

/** A submitted job, and whether this submission created it. */
export interface Submitted {
  job: JobInfo__Output;
  created: boolean;
}

/** Submitting, canceling and restoring the jobs of one coordinator. */
export class JobChanges {
  private readonly deps: JobChangesDeps;

  constructor(deps: JobChangesDeps) {
    this.deps = deps;
  }

  /** Registers a job; the same spec again is a no-op. */
  async submit(input: JobSpec | null | undefined, from?: SubmitFrom): Promise<Submitted> {
    this.deps.requireRunning();
    const spec = validateJobSpec(input, this.deps.limits);
    // A spec of 100,000 tasks takes a good part of a second to check and as much to encode: timers (the
    // election lease's keepalive, heartbeat sweeps) run in between.
    if (spec.tasks.length >= LARGE_SPEC_TASKS) {
      await nextTurn();
      // Encoded now, in a turn of its own: the store, every welcome and every answer about the job take it.
      specBytes(spec);
      await nextTurn();
      this.deps.requireRunning();
    }
    const jobs = this.deps.jobs;
    const existing = jobs.find(spec.jobId);
    if (existing !== undefined) {
      if (sameSpec(existing.tracker.spec, spec)) return { job: jobInfo(existing), created: false };
      throw new CkptError('JOB_EXISTS', `job ${spec.jobId} exists with another spec`, { jobId: spec.jobId });
    }
    if (jobs.quarantineReason(spec.jobId) !== undefined) jobs.get(spec.jobId);
    const held = jobs.jobCount + jobs.quarantinedCount;
    if (held >= this.deps.limits.maxJobs) {
      throw new CkptError('LIMIT_REACHED', `the coordinator holds ${held} jobs, its limit`, { jobId: spec.jobId });
    }
    const guard = this.deps.guard();
    const savepoint = from?.savepoint ?? undefined;
    const { job, created } =
      savepoint === undefined
        ? await this.deps.fence.run(() => this.deps.store.createJob(spec, this.deps.now(), guard))
        : await this.deps.savepoints.createJob(spec, savepoint, from?.allowNonRestoredState === true);
    if (!created && !sameSpec(job.spec, spec)) {
      throw new CkptError('JOB_EXISTS', `job ${spec.jobId} exists with another spec`, { jobId: spec.jobId });
    }
    const known = jobs.find(spec.jobId);
    // A job another leader stored: its statistics go on from what it stored.
    const statistics = known !== undefined || created ? undefined : await this.deps.store.readStatistics(spec.jobId);
    const runtime =
      known ?? jobs.add(statistics === undefined ? job : { ...job, statistics }, created ? 'restoring' : 'resuming');
    runtime.start();
    this.deps.log.info({ jobId: spec.jobId, tasks: spec.tasks.length, created }, 'job submitted');
    return { job: jobInfo(runtime), created };
  }

  /** Cancels a job: pending checkpoints abort, workers are told. */
  async cancel(jobId: unknown): Promise<JobInfo__Output> {
    this.deps.requireRunning();
    const runtime = this.deps.jobs.get(jobId);
    if (runtime.tracker.state !== 'JOB_STATE_CANCELED') {
      const guard = this.deps.guard();
      await this.deps.fence.run(() =>
        this.deps.store.updateJob(runtime.jobId, runtime.tracker.spec, 'JOB_STATE_CANCELED', guard),
      );
      runtime.tracker.cancel();
      runtime.abortAll('ABORT_REASON_JOB_CANCELED', `job ${runtime.jobId} was canceled`);
      runtime.stop();
      this.deps.canceled(runtime.jobId);
      this.deps.log.info({ jobId: runtime.jobId }, 'job canceled');
    }
    return jobInfo(runtime);
  }

  /**
   * Restores a job to a retained checkpoint (0: the latest): pending
   * checkpoints abort, the epoch rises with the checkpoint stored as the
   * restore point, and every task restores from it. A refused call changes
   * nothing.
   */
  async restore(jobId: unknown, checkpointId: unknown): Promise<RollBack> {
    this.deps.requireRunning();
    const runtime = this.deps.jobs.get(jobId);
    const id = checkCount(checkpointId ?? 0, 'checkpoint_id', Number.MAX_SAFE_INTEGER, { jobId: runtime.jobId });
    const restored = await this.deps.fence.run(() => runtime.restore(id));
    this.deps.log.info({ jobId: runtime.jobId, ...restored }, 'job restored to a checkpoint');
    return restored;
  }
}
