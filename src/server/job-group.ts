/**
 * One job group of a coordinator process: its election (`Leadership`) and
 * the coordinator it runs while it leads (`CoordinatorHost`). With one
 * group (the default) that is every job, under the election `leader`; with
 * K groups, group g campaigns under `group-<g>` and its coordinator loads
 * and runs only the jobs `jobGroupOf(jobId, K) === g`. Its writes are
 * fenced by its own election key, and its term is that key's create
 * revision: etcd revisions grow over the whole keyspace, so a job's terms
 * still grow whichever group's leaders came before.
 */
import type { Etcd3 } from 'etcd3';
import { createObjectPieces, type NatsBus } from '../bus/index.js';
import type { CoordinatorConfig } from '../config/config.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { jobGroupOf } from '../core/job-groups.js';
import type { Logger } from '../log/index.js';
import type { CoordinatorMetrics, JobFigures } from '../metrics/coordinator-metrics.js';
import type { EtcdStore } from '../store/index.js';
import { savepointHandles } from '../coordinator/state-settings.js';
import type { HandleLike } from '../core/shared-state-registry.js';
import { CoordinatorHost } from './coordinator-host.js';
import { ForeignReferences } from './foreign-references.js';
import { groupElectionName } from './election.js';
import { Leadership, type LeaderTerm } from './leadership.js';

/** What every group of a process shares. */
export interface ProcessParts {
  config: CoordinatorConfig;
  logger: Logger;
  store: EtcdStore;
  bus: NatsBus;
  metrics: CoordinatorMetrics;
  /** The election's own etcd client. */
  electionClient: Etcd3;
}

/** Options of a `JobGroup`. */
export interface JobGroupOptions {
  /** This group, in `[0, groups)`. */
  group: number;
  groups: number;
  parts: ProcessParts;
  /** Whether this group's coordinator serves now or no longer. */
  onServing(group: JobGroup, serving: boolean): void;
}

/** One group's election and coordinator. */
export class JobGroup {
  readonly group: number;
  readonly groups: number;
  readonly leadership: Leadership;
  readonly host: CoordinatorHost;
  readonly #parts: ProcessParts;
  /** With several groups: what other groups' jobs name of this group's pieces. */
  readonly #foreign: ForeignReferences | undefined;
  #detachMetrics: (() => void) | undefined;

  /** Nothing campaigns before `start()`. */
  constructor(options: JobGroupOptions) {
    const { group, groups, parts } = options;
    this.group = group;
    this.groups = groups;
    this.#parts = parts;
    this.#foreign = groups === 1 ? undefined : new ForeignReferences(parts.store, (jobId) => this.owns(jobId));
    const { config } = parts;
    const logger = groups === 1 ? parts.logger : parts.logger.child({ jobGroup: group });
    this.leadership = new Leadership({
      client: parts.electionClient,
      prefix: config.etcdPrefix,
      election: groupElectionName(group, groups),
      leaseTtlMs: config.leaseTtlMs,
      probeIntervalMs: config.leaderProbeIntervalMs,
      logger,
      onElected: (term) => this.host.lead(term),
      onDeposed: (why) => {
        this.stopCounting();
        this.host.follow(why);
      },
    });
    this.host = new CoordinatorHost({
      create: (term) => {
        this.stopCounting();
        const coordinator = this.#createCoordinator(term, logger);
        this.#detachMetrics = parts.metrics.attach(
          coordinator.events,
          () => jobFigures(coordinator),
          groups === 1 ? undefined : (jobId) => this.owns(jobId),
        );
        return coordinator;
      },
      leader: () => this.leadership.leader,
      onServing: (serving) => options.onServing(this, serving),
      onFailed: (why) => this.leadership.stepDown(why),
      logger,
    });
  }

  /** Whether `jobId` belongs to this group. */
  owns(jobId: string): boolean {
    return this.groups === 1 || jobGroupOf(jobId, this.groups) === this.group;
  }

  /** True while this process leads the group and its coordinator runs. */
  get leading(): boolean {
    return this.host.state === 'leading';
  }

  /** Starts campaigning with `advertise`. */
  start(advertise: string): void {
    this.leadership.start(advertise);
  }

  /** Stops counting the metrics of this group's coordinator. */
  stopCounting(): void {
    this.#detachMetrics?.();
    this.#detachMetrics = undefined;
  }

  /** A job's savepoints' handles, and what jobs of other groups name of its pieces (see `foreign-references.ts`). */
  async #pinned(jobId: string): Promise<HandleLike[]> {
    const [own, foreign] = await Promise.all([
      savepointHandles(this.#parts.store, jobId),
      this.#foreign?.of(jobId) ?? Promise.resolve([]),
    ]);
    return [...own, ...foreign];
  }

  #createCoordinator(term: LeaderTerm, logger: Logger): Coordinator {
    const { config, store, bus, metrics } = this.#parts;
    return new Coordinator({
      store,
      bus,
      logger: logger.child({ term: term.term }),
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      idBlockSize: config.idBlockSize,
      historySize: config.historySize,
      leadership: { guard: { key: term.key, createRevision: term.createRevision }, term: term.term },
      onLeadershipLost: (err) => this.leadership.stepDown(err.message),
      limits: config,
      stateUriSchemes: config.stateUriSchemes,
      standbyTimeoutMs: config.standbyTimeoutMs,
      stateCleanup: {
        pieces: createObjectPieces(bus.connection),
        orphanGraceMs: config.orphanGraceMs,
        stateSweepIntervalMs: config.stateSweepIntervalMs,
        canceledStateRetentionMs: config.canceledStateRetentionMs,
        ...(this.#foreign === undefined ? {} : { pinnedHandles: (jobId: string) => this.#pinned(jobId) }),
      },
      observer: metrics.timings,
      ...(this.groups === 1 ? {} : { jobFilter: (jobId: string) => this.owns(jobId) }),
    });
  }
}

/** The figures of the coordinator's running jobs, which the metrics read when scraped. */
export function* jobFigures(coordinator: Coordinator): Generator<JobFigures> {
  const sessions = coordinator.sessions.countByJob();
  for (let after = '', more = true; more;) {
    const page = coordinator.listJobs(after, JOB_PAGE);
    for (const job of page.jobs) {
      const jobId = job.spec?.jobId ?? '';
      if (job.state === 'JOB_STATE_RUNNING' && jobId !== '')
        yield { jobId, intervalMs: job.intervalMs, sessions: sessions.get(jobId) ?? 0 };
      after = jobId;
    }
    more = page.more && page.jobs.length > 0;
  }
}

const JOB_PAGE = 500;
