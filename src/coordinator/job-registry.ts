/**
 * The jobs one coordinator runs, and those it serves as quarantined because
 * their records in etcd are unreadable or invalid. It loads them, creates
 * each job's tracker and runtime, and routes a call's job id to its
 * runtime, refusing unknown and quarantined jobs with their reason.
 */
import type { AckRules } from '../core/ack-rules.js';
import { CkptError, type LeadershipLostError } from '../core/errors.js';
import { JobTracker } from '../core/job-tracker.js';
import type { Limits } from '../core/limits.js';
import type { CheckpointStore, ControlBus, LeaderGuard, QuarantinedJob, StoredJobState } from '../core/ports.js';
import { checkId, validateJobSpec } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import type { CheckpointEvents } from './events.js';
import { JobRuntime } from './job-runtime.js';
import type { CoordinatorObserver } from './observer.js';
import type { Session } from './sessions.js';
import type { StateCleanup } from './state-cleanup.js';

/** What the registry needs from its coordinator. */
export interface JobRegistryDeps {
  store: CheckpointStore;
  bus: ControlBus;
  events: CheckpointEvents;
  /** The root logger, from which each job's logger derives. */
  logger: Logger;
  /** The coordinator's logger. */
  log: Logger;
  now: () => number;
  limits: Limits;
  ackRules: AckRules;
  idBlockSize: number;
  historySize: number | undefined;
  guard: LeaderGuard | undefined;
  term: number;
  /** A fenced write was refused: this coordinator is no longer the leader. */
  onLeadershipLost: (err: LeadershipLostError) => void;
  /** The live sessions of a job. */
  sessionsOf(jobId: string): Session[];
  /** Ends the sessions and standbys of a job that is gone. */
  endSessions(jobId: string, error: CkptError): void;
  /** True while the coordinator runs. */
  running(): boolean;
  /** The coordinator's state cleanup, which every job's commits feed. */
  state: StateCleanup;
  /** Hears how long acknowledgements and commits took. */
  observer: CoordinatorObserver | undefined;
}

/** The jobs of one coordinator, by id. */
export class JobRegistry {
  private readonly deps: JobRegistryDeps;
  private readonly jobs = new Map<string, JobRuntime>();
  /** Jobs whose records in etcd are unreadable or invalid, with the reason. */
  private readonly quarantined = new Map<string, string>();

  constructor(deps: JobRegistryDeps) {
    this.deps = deps;
  }

  /** Jobs run. */
  get jobCount(): number {
    return this.jobs.size;
  }
  /** Jobs served as quarantined. */
  get quarantinedCount(): number {
    return this.quarantined.size;
  }

  /** The runtimes of the jobs run. */
  runtimes(): JobRuntime[] {
    return [...this.jobs.values()];
  }

  /** Ids of every job, run or quarantined, unordered. */
  jobIds(): string[] {
    return [...this.jobs.keys(), ...this.quarantined.keys()];
  }

  /** The job's runtime, if it runs here. */
  find(jobId: string): JobRuntime | undefined {
    return this.jobs.get(jobId);
  }

  /** Why a job is quarantined, or undefined when it is not. */
  quarantineReason(jobId: string): string | undefined {
    return this.quarantined.get(jobId);
  }

  /** The job's runtime; throws MALFORMED, UNKNOWN_JOB or JOB_QUARANTINED. */
  get(jobId: unknown): JobRuntime {
    const id = checkId(jobId, 'job_id');
    const runtime = this.jobs.get(id);
    if (runtime !== undefined) return runtime;
    const quarantined = this.quarantined.get(id);
    if (quarantined !== undefined) {
      throw new CkptError('JOB_QUARANTINED', `job ${id} is quarantined: ${quarantined}`, { jobId: id });
    }
    throw new CkptError('UNKNOWN_JOB', `no job ${id}`, { jobId: id });
  }

  /** Takes in what etcd holds: jobs to run (they resume), and those the store found unreadable. */
  load(stored: { jobs: readonly StoredJobState[]; quarantined: readonly QuarantinedJob[] }): void {
    for (const job of stored.jobs) this.loadJob(job);
    for (const job of stored.quarantined) this.quarantine(job);
  }

  /**
   * Starts every job's schedule. Checkpoints that an earlier coordinator
   * left pending are aborted by a broadcast with reason COORDINATOR_RESTART.
   */
  async startAll(): Promise<void> {
    // The aborts share their NATS confirmations: one round trip for every job, not one each.
    const aborts: Promise<void>[] = [];
    for (const runtime of this.jobs.values()) {
      runtime.start();
      aborts.push(this.abortLeftovers(runtime));
    }
    await Promise.all(aborts);
  }

  /** Creates the tracker and runtime of a job stored in etcd; it is not started. */
  add(job: StoredJobState, attempt: 'resuming' | 'restoring'): JobRuntime {
    const { deps } = this;
    const jobId = job.spec.jobId;
    const tracker = new JobTracker({ ...job, historySize: deps.historySize, attempt, ackRules: deps.ackRules });
    const runtime = new JobRuntime(tracker, {
      store: deps.store,
      bus: deps.bus,
      events: deps.events,
      logger: deps.logger,
      now: deps.now,
      idBlockSize: deps.idBlockSize,
      sessions: () => deps.sessionsOf(jobId),
      guard: deps.guard,
      term: deps.term,
      onLeadershipLost: deps.onLeadershipLost,
      onQuarantine: (why) => this.quarantineRunning(jobId, why),
      statistics: job.statistics,
      statisticsSinceMs: job.statistics === undefined ? Math.max(job.createdAtMs, deps.now()) : 0,
      state: {
        releasedShared: (tasks) => deps.state.releasedShared(tasks),
        committed: (manifest, subsumed) => deps.state.committed(manifest, subsumed),
        acknowledged: (tasks) => deps.state.acknowledged(jobId, tasks),
      },
      observer: deps.observer,
    });
    this.jobs.set(jobId, runtime);
    return runtime;
  }

  /**
   * A job read from etcd. Its spec was valid for the coordinator that
   * stored it; one past this coordinator's limits is quarantined.
   */
  private loadJob(job: StoredJobState): void {
    try {
      validateJobSpec(job.spec, this.deps.limits);
    } catch (err) {
      const why = `its stored spec is outside this coordinator's limits: ${CkptError.from(err).message}`;
      this.quarantine({ jobId: job.spec.jobId, reason: why });
      return;
    }
    try {
      this.add(job, 'resuming');
    } catch (err) {
      // The store checks what it loads; whatever still cannot run is one job's problem, not every job's.
      this.jobs.delete(job.spec.jobId);
      this.quarantine({ jobId: job.spec.jobId, reason: `its stored state cannot run: ${CkptError.from(err).message}` });
    }
  }

  /** Serves a job as quarantined: listed with its reason, its calls refused. */
  private quarantine({ jobId, reason }: QuarantinedJob): void {
    this.quarantined.set(jobId, reason);
    this.deps.log.error({ jobId, reason }, 'job quarantined: its records in etcd are unreadable or invalid');
  }

  /**
   * A running job whose stored state turned out unusable (a corrupt
   * manifest to restore from): it stops, its sessions and standbys end with
   * JOB_QUARANTINED, and it is served as quarantined. Repairing its records
   * and a new leadership load it again.
   */
  private quarantineRunning(jobId: string, why: string): void {
    const runtime = this.jobs.get(jobId);
    if (runtime === undefined || !this.deps.running()) return;
    this.jobs.delete(jobId);
    runtime.stop(why);
    this.quarantine({ jobId, reason: why });
    this.deps.endSessions(jobId, new CkptError('JOB_QUARANTINED', `job ${jobId} is quarantined: ${why}`, { jobId }));
  }

  private async abortLeftovers(runtime: JobRuntime): Promise<void> {
    const { tracker } = runtime;
    const from = tracker.latestCheckpointId + 1;
    const below = tracker.ids.nextId;
    if (tracker.state !== 'JOB_STATE_RUNNING' || from >= below) return;
    // Ids in [from, below) may have been triggered by the previous coordinator.
    await this.deps.bus
      .publishAbort({
        jobId: tracker.jobId,
        checkpointId: below - 1,
        epoch: tracker.epoch,
        reason: 'ABORT_REASON_COORDINATOR_RESTART',
        message: `every checkpoint from ${from} to ${below - 1} that was pending`,
        term: this.deps.term,
      })
      .catch((err: unknown) => this.deps.log.warn({ err, jobId: tracker.jobId }, 'restart abort not broadcast'));
  }
}
