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
import { localSource, remoteSource, type ClusterView, type QuerySource } from './dashboard-api.js';
import type { Readiness } from './http-server.js';
import type { Leadership } from './leadership.js';

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
