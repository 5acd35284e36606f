/**
 * The Prometheus metrics of a coordinator process (prom-client), served on
 * its HTTP port at `/metrics`. Checkpoint figures come from the leading
 * coordinator's lifecycle events; a standby reports only what it is, and
 * the timings of its etcd requests (`timing-metrics.ts`).
 *
 * Label rules: jobs are `job_id` (Prometheus keeps `job` for the scrape
 * job), abort reasons `reason`; checkpoint ids are never labels (one
 * series per checkpoint would grow without bound), only gauge values.
 */
import { createRequire } from 'node:module';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CheckpointEvents, RecoveryEvent } from '../coordinator/events.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import { DURATION_BUCKETS_SECONDS, SIZE_BUCKETS_BYTES } from './buckets.js';
import { TimingMetrics } from './timing-metrics.js';
import { AccessMetrics } from './access-metrics.js';

/** What the process says of itself in `ckpt_build_info`. */
export interface BuildInfo {
  version: string;
}

/** The version in the package's `package.json`; `unknown` when it cannot be read. */
export function packageVersion(): string {
  // From src/metrics, or from dist/src/metrics once compiled.
  const require = createRequire(import.meta.url);
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(path) as { name?: unknown; version?: unknown };
      if (pkg.name === 'ckpt' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not there: try the next place.
    }
  }
  return 'unknown';
}

/** What the metrics read of the leading coordinator's jobs when scraped. */
export interface JobFigures {
  jobId: string;
  /** The interval between periodic checkpoints in force; 0 when off. */
  intervalMs: number;
  /** Worker sessions open for the job. */
  sessions: number;
}

/** A coordinator process's metrics; `attach` them to each coordinator it runs while leading. */
export class CoordinatorMetrics {
  readonly registry = new Registry();
  /**
   * The timings: the observer of the process's etcd store
   * (`EtcdStoreOptions.observer`) and of every coordinator it runs
   * (`CoordinatorOptions.observer`).
   */
  readonly timings = new TimingMetrics(this.registry);
  /** The observer of the process's access control (`AccessControlOptions.observer`). */
  readonly access = new AccessMetrics(this.registry);
  readonly #pending = new Map<string, Set<number>>();
  /** Per job, the newest completed checkpoint known: from this term's commits, or read back at its start. */
  readonly #latest = new Map<string, { id: number; atMs: number }>();
  /** The figures of each coordinator attached (one per job group the process leads). */
  readonly #jobs = new Set<() => Iterable<JobFigures>>();
  readonly #triggered: Counter<'job_id'>;
  readonly #completed: Counter<'job_id'>;
  readonly #failed: Counter<'job_id' | 'reason'>;
  readonly #duration: Histogram<'job_id'>;
  readonly #size: Histogram<'job_id' | 'kind'>;
  readonly #recoveries: Counter<'job_id'>;

  /**
   * `isLeader`: whether the process leads at least one job group (with one
   * group: whether it leads). `groupsLed`: for each job group in order,
   * whether the process leads it; without it, one group led when `isLeader`.
   */
  constructor(build: BuildInfo, isLeader: () => boolean, groupsLed: () => readonly boolean[] = () => [isLeader()]) {
    const registers = [this.registry];
    new Gauge({
      name: 'ckpt_build_info',
      help: 'Always 1; the labels say which ckpt and Node.js run this coordinator.',
      labelNames: ['version', 'node_version'],
      registers,
    }).set({ version: build.version, node_version: process.version }, 1);
    new Gauge({
      name: 'ckpt_coordinator_is_leader',
      help: '1 while this coordinator leads (runs the protocol) at least one job group, 0 while it is a standby of every group.',
      registers,
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'ckpt_job_group_is_leader',
      help: '1 while this coordinator leads the job group job_group (runs its jobs), 0 while it is a standby of it.',
      labelNames: ['job_group'],
      registers,
      collect() {
        for (const [group, led] of groupsLed().entries()) this.set({ job_group: String(group) }, led ? 1 : 0);
      },
    });
    const pending = this.#pending;
    new Gauge({
      name: 'ckpt_checkpoints_in_progress',
      help: 'Checkpoints triggered by this coordinator and not yet completed or aborted, per job.',
      labelNames: ['job_id'],
      registers,
      collect() {
        this.reset();
        for (const [jobId, ids] of pending) this.set({ job_id: jobId }, ids.size);
      },
    });
    this.#triggered = new Counter({
      name: 'ckpt_checkpoints_triggered_total',
      help: 'Checkpoints triggered by this coordinator, per job.',
      labelNames: ['job_id'],
      registers,
    });
    this.#completed = new Counter({
      name: 'ckpt_checkpoints_completed_total',
      help: 'Checkpoints this coordinator committed, per job.',
      labelNames: ['job_id'],
      registers,
    });
    this.#failed = new Counter({
      name: 'ckpt_checkpoints_failed_total',
      help: 'Checkpoints this coordinator aborted, per job and abort reason.',
      labelNames: ['job_id', 'reason'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'ckpt_checkpoint_duration_seconds',
      help: 'Trigger to commit of each completed checkpoint, per job.',
      labelNames: ['job_id'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.#size = new Histogram({
      name: 'ckpt_checkpoint_size_bytes',
      help: 'Sizes of each completed checkpoint, per job: kind="persisted" is what it stored, kind="state" the whole state.',
      labelNames: ['job_id', 'kind'],
      buckets: SIZE_BUCKETS_BYTES,
      registers,
    });
    const latest = this.#latest;
    new Gauge({
      name: 'ckpt_last_completed_checkpoint_id',
      help: 'Id of the newest completed checkpoint of each job the leader knows (its own commits, or read back when it took over).',
      labelNames: ['job_id'],
      registers,
      collect() {
        this.reset();
        for (const [jobId, l] of latest) this.set({ job_id: jobId }, l.id);
      },
    });
    new Gauge({
      name: 'ckpt_last_completed_checkpoint_timestamp_seconds',
      help: 'Unix time at which the newest completed checkpoint of each job the leader knows completed.',
      labelNames: ['job_id'],
      registers,
      collect() {
        this.reset();
        for (const [jobId, l] of latest) if (l.atMs > 0) this.set({ job_id: jobId }, l.atMs / 1000);
      },
    });
    const attached = this.#jobs;
    const jobs = (): Iterable<JobFigures> => [...attached].flatMap((figures) => [...figures()]);
    new Gauge({
      name: 'ckpt_checkpoint_interval_seconds',
      help: 'Interval between periodic checkpoints in force for each running job of the leader (0: off).',
      labelNames: ['job_id'],
      registers,
      collect() {
        this.reset();
        for (const job of jobs()) this.set({ job_id: job.jobId }, job.intervalMs / 1000);
      },
    });
    new Gauge({
      name: 'ckpt_worker_sessions',
      help: 'Worker sessions open with the leader for each of its running jobs.',
      labelNames: ['job_id'],
      registers,
      collect() {
        this.reset();
        for (const job of jobs()) this.set({ job_id: job.jobId }, job.sessions);
      },
    });
    this.#recoveries = new Counter({
      name: 'ckpt_recoveries_total',
      help: 'Recoveries this coordinator ran (the job entered a new epoch and every task restores), per job.',
      labelNames: ['job_id'],
      registers,
    });
  }

  /**
   * Counts the events of one coordinator's term and reads its jobs when
   * scraped; returns the detach function, which forgets what was pending
   * and the jobs' figures (a standby reports none). A process that runs a
   * coordinator per job group attaches each, with `owns` saying which jobs
   * are its: its detach forgets only theirs. Without `owns`, the detach
   * forgets every job's.
   */
  attach(events: CheckpointEvents, jobs?: () => Iterable<JobFigures>, owns?: (jobId: string) => boolean): () => void {
    const unsubscribe = events.subscribe(undefined, (summary) => this.#checkpoint(summary));
    const unsubscribeRecoveries = events.subscribeRecoveries((event) => this.#recovery(event));
    const figures = jobs === undefined ? undefined : (): Iterable<JobFigures> => jobs();
    if (figures !== undefined) this.#jobs.add(figures);
    return () => {
      unsubscribe();
      unsubscribeRecoveries();
      // What was pending is the next leader's now.
      for (const map of [this.#pending, this.#latest]) {
        if (owns === undefined) map.clear();
        else for (const jobId of [...map.keys()]) if (owns(jobId)) map.delete(jobId);
      }
      if (figures !== undefined) this.#jobs.delete(figures);
    };
  }

  /**
   * A completed checkpoint read back from etcd when the term began, so that
   * the last completed checkpoint shows after a fail-over before the new
   * leader commits one; a newer one already counted wins.
   */
  knownCompleted(summary: CheckpointSummary__Output): void {
    if (summary.state !== 'CHECKPOINT_STATE_COMPLETED') return;
    this.#setLatest(summary.jobId, Number(summary.checkpointId), Number(summary.finishedAtMs));
  }

  #setLatest(jobId: string, id: number, atMs: number): void {
    const known = this.#latest.get(jobId);
    if (known === undefined || id > known.id) this.#latest.set(jobId, { id, atMs: Math.max(0, atMs) });
  }

  /** The metrics in Prometheus's text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  #checkpoint(s: CheckpointSummary__Output): void {
    const job = { job_id: s.jobId };
    const ids = this.#pending.get(s.jobId) ?? new Set<number>();
    this.#pending.set(s.jobId, ids);
    if (s.state === 'CHECKPOINT_STATE_PENDING') {
      if (!ids.has(s.checkpointId)) this.#triggered.inc(job);
      ids.add(s.checkpointId);
      return;
    }
    ids.delete(s.checkpointId);
    if (s.state === 'CHECKPOINT_STATE_COMPLETED') {
      this.#completed.inc(job);
      const finished = Number(s.finishedAtMs);
      const triggered = Number(s.triggeredAtMs);
      if (finished > 0 && triggered > 0 && finished >= triggered)
        this.#duration.observe(job, (finished - triggered) / 1000);
      this.#size.observe({ ...job, kind: 'persisted' }, Number(s.persistedBytes));
      this.#size.observe({ ...job, kind: 'state' }, Number(s.stateSizeBytes));
      this.#setLatest(s.jobId, Number(s.checkpointId), finished);
    } else if (s.state === 'CHECKPOINT_STATE_ABORTED') {
      this.#failed.inc({ ...job, reason: reasonLabel(s.abortReason) });
    }
  }

  #recovery(event: RecoveryEvent): void {
    this.#recoveries.inc({ job_id: event.jobId });
  }
}

/** `ABORT_REASON_DECLINED` → `declined`. */
function reasonLabel(reason: string): string {
  return reason.replace(/^ABORT_REASON_/, '').toLowerCase() || 'unspecified';
}
