/**
 * What a coordinator process is, as its HTTP port says it: ready or not
 * (`/readyz`), its role and leader (`/api/v1/cluster`), and where the
 * dashboard's API answers from.
 */
import type { ClientOptions } from '../client/client-options.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { CkptError } from '../core/errors.js';
import { packageVersion } from '../metrics/coordinator-metrics.js';
import type { CoordinatorHost } from './coordinator-host.js';
import type { ClusterView } from './dashboard-api.js';
import { localSource, remoteSource, type QuerySource } from './dashboard-sources.js';
import type { Readiness } from './http-server.js';
import type { Leadership } from './leadership.js';
import type { GroupQueries } from './group-queries.js';
import type { JobGroup } from './job-group.js';

/** What the dashboard says of this process. */
export function clusterView(host: CoordinatorHost, leadership: Leadership, self: string): ClusterView {
  const { ready, detail } = readiness(host, leadership);
  const role = ({ leading: 'leader', following: 'standby', starting: 'starting', stopped: 'stopping' } as const)[
    host.state
  ];
  return { role, leader: leadership.leader, self, ready, detail, version: packageVersion() };
}

/**
 * Where the dashboard's API answers from: this process's coordinator while
 * it leads, else the leader over gRPC (one pair of clients per leader,
 * replaced when the leader changes).
 */
export class QuerySources {
  #remote: { address: string; source: QuerySource & { close(): void } } | undefined;
  #local: { coordinator: Coordinator; source: QuerySource } | undefined;

  constructor(
    private readonly host: CoordinatorHost,
    private readonly leadership: Leadership,
    private readonly self: () => string,
    private readonly peer: ClientOptions,
  ) {}

  current(): QuerySource {
    const leading = this.host.state === 'leading' ? this.host.coordinator : undefined;
    if (leading !== undefined) {
      if (this.#local?.coordinator !== leading) this.#local = { coordinator: leading, source: localSource(leading) };
      return this.#local.source;
    }
    const leader = this.leadership.leader;
    if (leader === undefined || leader === this.self()) {
      const why = this.host.state === 'starting' ? 'this coordinator is taking over as leader' : 'no leader is known';
      throw new CkptError('UNAVAILABLE', `${why}; try again shortly`, { retryable: true });
    }
    if (this.#remote?.address !== leader) {
      this.#remote?.source.close();
      this.#remote = { address: leader, source: remoteSource(leader, this.peer) };
    }
    return this.#remote.source;
  }

  close(): void {
    this.#remote?.source.close();
    this.#remote = undefined;
  }
}

/** Ready while leading, or as a standby that knows whom to send callers to. */
export function readiness(host: CoordinatorHost, leadership: Leadership): Readiness {
  if (host.state === 'leading') return { ready: true, detail: 'leading' };
  const leader = leadership.leader;
  if (host.state === 'following' && leader !== undefined)
    return { ready: true, detail: `standby; the leader is ${leader}` };
  if (host.state === 'following') return { ready: false, detail: 'no leader is known yet' };
  return { ready: false, detail: host.state === 'starting' ? 'taking over as leader' : 'stopping' };
}

/** What the HTTP port shows of the process, whatever its number of job groups. */
export interface ProcessView {
  cluster(): ClusterView;
  /** Where the dashboard's API answers from now; throws UNAVAILABLE when nothing can answer. */
  source(): QuerySource;
  readiness(): Readiness;
  /** The process does not campaign, for the reason given (a mismatching number of job groups). */
  refuse(error: CkptError): void;
  /** Calls `listener` when `close()` is called. */
  onClose(listener: () => void): void;
  close(): void;
}

/**
 * The view of a process: with one job group, exactly that group's
 * (`clusterView`, `QuerySources`, `readiness`); with several, the role is
 * leader while it leads any group, each group's leader is listed, the
 * dashboard's queries fan out (`GroupQueries.querySource`), and it is ready
 * while every group is led here or has a known leader.
 */
export function processView(
  groups: readonly JobGroup[],
  queries: GroupQueries,
  self: () => string,
  peer: ClientOptions,
): ProcessView {
  const closers: Array<() => void> = [];
  let refused: CkptError | undefined;
  const first = groups[0];
  if (first === undefined) throw new CkptError('INTERNAL', 'a coordinator process needs at least one job group');
  const single = groups.length === 1 ? new QuerySources(first.host, first.leadership, self, peer) : undefined;
  const ready = (): Readiness =>
    refused !== undefined
      ? { ready: false, detail: refused.message }
      : single !== undefined
        ? readiness(first.host, first.leadership)
        : groupsReadiness(groups);
  return {
    cluster() {
      if (single !== undefined && refused === undefined) return clusterView(first.host, first.leadership, self());
      const { ready: isReady, detail } = ready();
      const led = groups.some((g) => g.leading);
      const stopping = groups.every((g) => g.host.state === 'stopped');
      return {
        role: stopping ? 'stopping' : led ? 'leader' : 'standby',
        leader: first.leadership.leader,
        self: self(),
        ready: isReady,
        detail,
        version: packageVersion(),
        ...(groups.length === 1
          ? {}
          : { groups: groups.map((g) => ({ group: g.group, leader: g.leadership.leader })) }),
      };
    },
    source: () => (single !== undefined ? single.current() : queries.querySource()),
    readiness: ready,
    refuse(error) {
      refused = error;
    },
    onClose(listener) {
      closers.push(listener);
    },
    close() {
      single?.close();
      for (const close of closers.splice(0)) close();
    },
  };
}

/** Ready while every group is led here or has a known leader elsewhere. */
function groupsReadiness(groups: readonly JobGroup[]): Readiness {
  const led = groups.filter((g) => g.leading).map((g) => g.group);
  const unknown = groups.filter((g) => !g.leading && g.leadership.leader === undefined).map((g) => g.group);
  const starting = groups.filter((g) => g.host.state === 'starting').map((g) => g.group);
  if (groups.every((g) => g.host.state === 'stopped')) return { ready: false, detail: 'stopping' };
  const leads = `leads job groups [${led.join(', ')}] of ${groups.length}`;
  if (starting.length > 0) return { ready: false, detail: `${leads}; taking over job groups [${starting.join(', ')}]` };
  if (unknown.length > 0)
    return { ready: false, detail: `${leads}; no leader is known of job groups [${unknown.join(', ')}]` };
  return { ready: true, detail: leads };
}
