/**
 * A whole coordinator process: etcd store, NATS bus, the gRPC server, and
 * the leader elections that decide which jobs this process runs.
 * The CLI, the demo and the tests all start a coordinator through
 * `runCoordinator`.
 *
 * The gRPC server starts at once. The process campaigns in the election of
 * each job group under the etcd prefix (one group by default: every job);
 * only when elected does it build and start the group's `Coordinator`,
 * which loads the group's state from etcd, aborts what an earlier leader
 * left pending and fences every write with its election key. Until then,
 * and again after it lost the leadership, it is a standby of the group:
 * every call about the group's jobs is refused with NOT_LEADER naming the
 * group's leader. With several groups, the processes share them evenly
 * (`group-balance.ts`) and calls that name no job fan out
 * (`group-queries.ts`). How the groups are made, campaign and show
 * themselves is in `process-groups.ts`.
 */
import { Etcd3 } from 'etcd3';
import type { CoordinatorConfig } from '../config/config.js';
import { etcdSecurityOf, natsAuthOf } from '../config/connection-security.js';
import { createNatsBus, type NatsBus } from '../bus/index.js';
import { CkptError } from '../core/errors.js';
import { jobGroupOf } from '../core/job-groups.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { Logger } from '../log/index.js';
import { createEtcdStore, etcdHostBreaker } from '../store/index.js';
import { CoordinatorMetrics, packageVersion } from '../metrics/coordinator-metrics.js';
import { startGrpcServer, type CoordinatorGrpcServer } from './grpc-server.js';
import { peerClientOptions, serverCredentials, serverTlsFiles } from './tls-config.js';
import { readCaFile, readIdentity } from '../core/tls-files.js';
import type { HttpTls } from '../metrics/http-endpoint.js';
import { AccessControl } from './access-control.js';
import { DashboardApi } from './dashboard-api.js';
import { processView } from './process-view.js';
import { DashboardAssets } from './dashboard-assets.js';
import { defaultHttpListen, startHttpServer, type CoordinatorHttpServer, type Readiness } from './http-server.js';
import { electionWatchBackoff } from './election.js';
import type { LeaderTerm } from './leadership.js';
import { GroupQueries } from './group-queries.js';
import type { JobGroup } from './job-group.js';
import {
  createJobGroups,
  firstOutcome,
  groupBalance,
  runningGroup,
  startCampaigns,
  type RunningGroup,
} from './process-groups.js';

export type { RunningGroup } from './process-groups.js';

/**
 * A running coordinator process, leader or standby. With several job
 * groups, `coordinator`, `isLeader`, `leader`, `term` and `whenLeader` are
 * those of group 0; `group(g)` and `groupOf(jobId)` reach every group.
 */
export interface RunningCoordinator {
  /** host:port of the gRPC server, with the port actually bound. */
  readonly address: string;
  /** host:port of the HTTP server (`/metrics`, `/healthz`, `/readyz`), with the port actually bound. */
  readonly httpAddress: string;
  /** The process's metrics. */
  readonly metrics: CoordinatorMetrics;
  /** The address this process campaigns with and standbys name when it leads. */
  readonly advertise: string;
  /**
   * The coordinator while this process leads; throws a `CkptError`
   * (NOT_LEADER on a standby, TAKING_OVER while it takes over, SHUTTING_DOWN once it stops).
   */
  readonly coordinator: Coordinator;
  /** True while this process leads and its coordinator runs. */
  readonly isLeader: boolean;
  /** The leader's advertised address as far as known: this process's own while it leads. */
  readonly leader: string | undefined;
  /** The leadership term while this process leads. */
  readonly term: LeaderTerm | undefined;
  /** Resolves once this process leads with its coordinator running; rejects after `timeoutMs`. */
  whenLeader(timeoutMs: number): Promise<void>;
  /** How many job groups the jobs are spread over (`CoordinatorConfig.jobGroups`). */
  readonly jobGroups: number;
  /** Job group `group` of this process; throws MALFORMED for a group that does not exist. */
  group(group: number): RunningGroup;
  /** The job group of `jobId`. */
  groupOf(jobId: string): number;
  /**
   * Graceful stop: stops accepting calls, ends worker sessions, waits for
   * commits in flight and open calls up to the configured grace period,
   * resigns the leadership so that a standby takes over at once, then
   * closes etcd and NATS.
   */
  stop(): Promise<void>;
  /**
   * Immediate stop without waiting, as if the process died (for fault
   * tests): the lease is not revoked, a standby takes over once it expires.
   */
  kill(): Promise<void>;
}

/**
 * Connects to etcd and NATS, serves gRPC, checks the number of job groups
 * against the prefix's (refusing to start with another, see
 * `job-groups-record.ts`) and campaigns in every group. Resolves once the
 * first election of every group has an outcome: this process leads with
 * its coordinator started, or another coordinator is seen leading, or
 * `etcdTimeoutMs` passed without either (it keeps campaigning in the
 * background).
 */
export async function runCoordinator(config: CoordinatorConfig, logger: Logger): Promise<RunningCoordinator> {
  const credentials = serverCredentials(config, logger);
  let groups: JobGroup[] = [];
  const metrics = new CoordinatorMetrics(
    { version: packageVersion() },
    () => groups.some((g) => g.leading),
    () => groups.map((g) => g.leading),
  );
  const access = new AccessControl({
    sharedToken: config.authToken,
    policyFile: config.accessPolicy,
    reloadIntervalMs: config.tlsReloadIntervalMs,
    logger,
    observer: metrics.access,
  });
  // Credential and TLS files are read first: a bad one fails the start before anything connects.
  const natsAuth = natsAuthOf(config);
  const etcdSecurity = etcdSecurityOf(config, config.etcd);
  const store = createEtcdStore({
    security: etcdSecurity,
    hosts: config.etcd,
    prefix: config.etcdPrefix,
    requestTimeoutMs: config.etcdTimeoutMs,
    maxManifestBytes: config.maxManifestBytes,
    logger,
    observer: metrics.timings,
  });
  let bus: NatsBus;
  try {
    bus = await createNatsBus({ servers: config.nats, subjectPrefix: config.subjectPrefix, logger, auth: natsAuth });
  } catch (err) {
    await store.close();
    throw err;
  }
  // The election has a client of its own: the etcd client stops calling a
  // host for a while after a few failed calls, and the store's should not
  // make the leader lose its lease.
  const electionClient = new Etcd3({
    ...etcdSecurity,
    hosts: config.etcd,
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + config.etcdTimeoutMs }),
    faultHandling: { host: etcdHostBreaker, watchBackoff: electionWatchBackoff() },
  });
  const closeAdapters = async (): Promise<void> => {
    access.close();
    electionClient.close();
    await Promise.allSettled([bus.close(), store.close()]);
  };
  let server: CoordinatorGrpcServer | undefined;
  const parts = { config, logger, store, bus, metrics, electionClient };
  // Set once the groups exist; a group that serves before that has no watch to tell.
  let provider: GroupQueries | undefined = undefined;
  // Elections start only with `startCampaigns`, once everything below exists.
  groups = createJobGroups(parts, (group) => {
    server?.setServing(groups.some((g) => g.leading));
    provider?.groupChanged(group.group);
  });
  let advertise = config.advertise;
  provider = new GroupQueries(groups, () => advertise ?? '', peerClientOptions(config));
  try {
    server = await startGrpcServer({
      coordinators: provider,
      logger,
      listen: config.listen,
      access,
      credentials,
      maxMessageBytes: config.maxMessageBytes,
      limits: config,
    });
  } catch (err) {
    await closeAdapters();
    throw err;
  }
  advertise = config.advertise ?? server.address;
  const view = processView(groups, provider, () => advertise ?? '', peerClientOptions(config));
  const api = new DashboardApi({ cluster: () => view.cluster(), source: () => view.source(), access, logger });
  let http: CoordinatorHttpServer;
  try {
    http = await startHttp(config, { metrics, api, tls: httpTls(config) }, () => view.readiness(), logger);
  } catch (err) {
    server.forceShutdown();
    await closeAdapters();
    throw err;
  }
  const self = advertise;
  const balance = groupBalance(config, { electionClient, groups, self, logger });
  const closeAll = async (): Promise<void> => {
    balance.stop();
    for (const g of groups) g.stopCounting();
    await http.close();
    view.close();
    provider.close();
    await closeAdapters();
  };
  const running = runningCoordinator(config, { server, http, metrics }, groups, self, closeAll);
  try {
    await startCampaigns(config, { electionClient, groups, balance, view, self, logger });
  } catch (err) {
    await running.kill();
    throw err;
  }
  await firstOutcome(groups, config.etcdTimeoutMs);
  return running;
}

/** HTTPS of the HTTP port, with the gRPC server's files, when `httpTls` is on. */
function httpTls(config: CoordinatorConfig): HttpTls | undefined {
  const files = serverTlsFiles(config);
  if (config.httpTls === 'off' || files === undefined) return undefined;
  return {
    load: () => {
      const identity = readIdentity(files.cert, files.key);
      return files.clientCa === undefined ? identity : { ...identity, ca: readCaFile(files.clientCa) };
    },
    reloadIntervalMs: files.reloadIntervalMs,
  };
}

/**
 * The HTTP server on the configured address; without one, on the gRPC port
 * + 1, or on a free port (with a warning) when that one is taken.
 */
async function startHttp(
  config: CoordinatorConfig,
  served: { metrics: CoordinatorMetrics; api: DashboardApi; tls: HttpTls | undefined },
  readiness: () => Readiness,
  logger: Logger,
): Promise<CoordinatorHttpServer> {
  const { metrics, api, tls } = served;
  const options = {
    ...(tls === undefined ? {} : { tls }),
    metrics: () => metrics.text(),
    metricsContentType: metrics.registry.contentType,
    readiness,
    api,
    assets: new DashboardAssets(),
    logger,
  };
  if (config.httpListen !== undefined) return startHttpServer({ ...options, listen: config.httpListen });
  const listen = defaultHttpListen(config.listen);
  try {
    return await startHttpServer({ ...options, listen });
  } catch (err) {
    const fallback = listen.replace(/:\d+$/, ':0');
    logger.warn({ err, listen, fallback }, 'default HTTP address taken; listening on a free port');
    return startHttpServer({ ...options, listen: fallback });
  }
}

function runningCoordinator(
  config: CoordinatorConfig,
  servers: { server: CoordinatorGrpcServer; http: CoordinatorHttpServer; metrics: CoordinatorMetrics },
  groups: readonly JobGroup[],
  advertise: string,
  closeAdapters: () => Promise<void>,
): RunningCoordinator {
  const { server, http, metrics } = servers;
  const views = groups.map(runningGroup);
  const first = views[0]!;
  let ending: Promise<void> | undefined;
  return {
    address: server.address,
    httpAddress: http.address,
    metrics,
    advertise,
    get coordinator() {
      return first.coordinator;
    },
    get isLeader() {
      return first.isLeader;
    },
    get leader() {
      return first.leader;
    },
    get term() {
      return first.term;
    },
    whenLeader: (timeoutMs) => first.whenLeader(timeoutMs),
    jobGroups: groups.length,
    group(group) {
      const view = views[group];
      if (view === undefined)
        throw new CkptError('MALFORMED', `job group ${group} does not exist: there are ${views.length}`);
      return view;
    },
    groupOf: (jobId) => jobGroupOf(jobId, groups.length),
    stop() {
      ending ??= (async () => {
        const drained = server.shutdown(config.shutdownGraceMs);
        await Promise.all(groups.map((g) => g.host.stop()));
        await Promise.all(groups.map((g) => g.leadership.stop(true)));
        await drained;
        await closeAdapters();
      })();
      return ending;
    },
    kill() {
      // The coordinators stop acting before the server drops their sessions, as if the process died.
      ending ??= (async () => {
        const halted = groups.map((g) => g.host.coordinator?.stop());
        server.forceShutdown();
        await Promise.all([
          ...halted,
          ...groups.map((g) => g.host.stop()),
          ...groups.map((g) => g.leadership.stop(false)),
        ]);
        await closeAdapters();
      })();
      server.forceShutdown();
      return ending;
    },
  };
}
