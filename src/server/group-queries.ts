/**
 * The process's job groups as the gRPC services and the HTTP port see
 * them. A call that names a job goes to the coordinator of that job's
 * group (`current(jobId)`): this process's while it leads the group, else
 * a refusal NOT_LEADER naming the group's leader. A call that names no job
 * (the job list, the watch of every job, the dashboard's lists) is answered
 * on any coordinator by fanning out: each group's jobs come from this
 * process's coordinator where it leads the group, and from the group's
 * leader over gRPC (`JOB_GROUP_METADATA` naming the group) where it does
 * not. Reading job records from etcd instead would show what was stored,
 * not the running state (pending checkpoints, sessions, live events); the
 * fan-out shows exactly what each leader has, as a standby's forwarding
 * does with one group.
 */
import type { ClientOptions } from '../client/client-options.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { CkptError } from '../core/errors.js';
import { jobGroupOf } from '../core/job-groups.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import { localSource, remoteSource, type QuerySource } from './dashboard-sources.js';
import { GroupWatch } from './group-watch.js';
import type { JobGroup } from './job-group.js';

/** Jobs read per group and page when the dashboard lists every job. */
const JOB_PAGE = 500;

/** A page of the jobs of every group, and the id it ends at (the next page's token when `more`). */
export interface JobsPage {
  jobs: JobInfo__Output[];
  more: boolean;
  lastJobId: string;
}

/** The job groups of a process, with fan-out for the calls that name no job. */
export class GroupQueries implements CoordinatorProvider {
  readonly #groups: readonly JobGroup[];
  readonly #self: () => string;
  readonly #peer: ClientOptions;
  readonly #remote = new Map<number, { address: string; source: QuerySource & { close(): void } }>();
  readonly #local = new Map<number, { coordinator: Coordinator; source: QuerySource }>();
  #querySource: QuerySource | undefined;
  readonly #changeListeners = new Set<(group: number) => void>();

  /** `groups` in group order; `peer`: how this process reaches other coordinators. */
  constructor(groups: readonly JobGroup[], self: () => string, peer: ClientOptions) {
    this.#groups = groups;
    this.#self = self;
    this.#peer = peer;
  }

  /** How many groups there are. */
  get count(): number {
    return this.#groups.length;
  }

  /** The coordinator of `jobId`'s group; with one group, of every job. See `CoordinatorProvider`. */
  current(jobId?: string): Coordinator {
    if (this.#groups.length === 1 || jobId !== undefined) return this.#groupOf(jobId ?? '').host.current();
    throw new CkptError(
      'INTERNAL',
      'a call that names no job has no one coordinator when the jobs form several groups',
    );
  }

  /** The coordinator of group `group`, or the refusal of a standby of that group. */
  ofGroup(group: number): Coordinator {
    const found = this.#groups[group];
    if (found === undefined) {
      throw new CkptError('MALFORMED', `job group ${group} does not exist: there are ${this.#groups.length}`);
    }
    return found.host.current();
  }

  /**
   * Up to `limit` jobs of every group ordered by id after `afterJobId`.
   * Rejects UNAVAILABLE (retryable) when a group has no reachable leader.
   */
  async listJobs(afterJobId: string, limit: number): Promise<JobsPage> {
    const pages = await Promise.all(this.#groups.map((g) => this.source(g.group).jobPage(afterJobId, limit)));
    const all = pages.flatMap((p) => p.jobs).sort((a, b) => compareIds(a.spec?.jobId ?? '', b.spec?.jobId ?? ''));
    const jobs = all.slice(0, limit);
    const more = all.length > limit || pages.some((p) => p.more);
    return { jobs, more, lastJobId: jobs.at(-1)?.spec?.jobId ?? '' };
  }

  /**
   * Calls `listener` with every lifecycle event of every group's jobs
   * until the returned function is called; `live` once every group's part
   * is watched. A group whose leader changes is watched again at its new
   * leader without ending the watch (`group-watch.ts`): `ended` is never
   * called, and is there to fit `QuerySource.watch`.
   */
  watchAll(listener: (s: CheckpointSummary__Output) => void, ended?: () => void, live?: () => void): () => void {
    const watch = new GroupWatch({
      groups: this.#groups.length,
      source: (group) => this.source(group),
      listener,
      ...(live === undefined ? {} : { live }),
      changes: (changed) => {
        this.#changeListeners.add(changed);
        return () => this.#changeListeners.delete(changed);
      },
    });
    return () => watch.stop();
  }

  /**
   * Where the queries of group `group` are answered: this process's
   * coordinator while it leads the group, else the group's leader over
   * gRPC. Throws UNAVAILABLE (retryable) when no leader is known.
   */
  source(group: number): QuerySource {
    const g = this.#groups[group];
    if (g === undefined) throw new CkptError('INTERNAL', `no job group ${group}`);
    const leading = g.host.state === 'leading' ? g.host.coordinator : undefined;
    if (leading !== undefined) {
      const local = this.#local.get(group);
      if (local?.coordinator === leading) return local.source;
      const source = localSource(leading);
      this.#local.set(group, { coordinator: leading, source });
      return source;
    }
    const leader = g.leadership.leader;
    if (leader === undefined || leader === this.#self()) {
      const why =
        g.host.state === 'starting'
          ? `this coordinator is taking over job group ${group}`
          : `no leader of job group ${group} is known`;
      throw new CkptError('UNAVAILABLE', `${why}; try again shortly`, { retryable: true });
    }
    const remote = this.#remote.get(group);
    if (remote?.address === leader) return remote.source;
    remote?.source.close();
    const source = remoteSource(leader, this.#peer, group);
    this.#remote.set(group, { address: leader, source });
    return source;
  }

  /**
   * The dashboard's source: the job list and the watch of every job fan
   * out, a job's queries go to its group. The same object every time (its
   * watch follows the groups' leaders), `servedBy` read when asked.
   */
  querySource(): QuerySource {
    this.#querySource ??= this.#createQuerySource();
    return this.#querySource;
  }

  #createQuerySource(): QuerySource {
    const of = (jobId: string): QuerySource => this.source(this.#groupOf(jobId).group);
    const groups = this.#groups;
    return {
      get servedBy() {
        return groups.every((g) => g.leading) ? 'local' : 'leader';
      },
      jobs: async () => {
        const jobs: JobInfo__Output[] = [];
        for (let after = '', more = true; more;) {
          const page = await this.listJobs(after, JOB_PAGE);
          jobs.push(...page.jobs);
          after = page.lastJobId;
          more = page.more && page.jobs.length > 0;
        }
        return jobs;
      },
      jobPage: async (after, limit) => this.listJobs(after, limit),
      job: async (jobId) => of(jobId).job(jobId),
      statistics: async (jobId) => of(jobId).statistics(jobId),
      checkpoint: async (jobId, id) => of(jobId).checkpoint(jobId, id),
      watch: (jobId, listener, ended, live) =>
        jobId === undefined ? this.watchAll(listener, ended, live) : of(jobId).watch(jobId, listener, ended, live),
    };
  }

  /**
   * This process started or stopped serving group `group`: the watches of
   * every job move that group's part now (`GroupWatch`).
   */
  groupChanged(group: number): void {
    for (const changed of [...this.#changeListeners]) changed(group);
  }

  /** Closes the clients of other groups' leaders. */
  close(): void {
    for (const remote of this.#remote.values()) remote.source.close();
    this.#remote.clear();
    this.#local.clear();
  }

  #groupOf(jobId: string): JobGroup {
    const group = this.#groups[jobGroupOf(jobId, this.#groups.length)];
    if (group === undefined) throw new CkptError('INTERNAL', `no job group for job ${jobId}`);
    return group;
  }
}

/** Job ids in the order the coordinators list them (`JobQueries.listJobs`). */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
