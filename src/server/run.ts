/**
 * A whole coordinator process: etcd store, NATS bus, the gRPC server, and
 * the leader election that decides whether this process runs the protocol.
 * The CLI, the demo and the tests all start a coordinator through
 * `runCoordinator`.
 *
 * The gRPC server starts at once. The process campaigns in the election
 * under the etcd prefix; only when elected does it build and start its
 * `Coordinator`, which loads the state from etcd, aborts what an earlier
 * leader left pending and fences every write with its election key. Until
 * then, and again after it lost the leadership, it is a standby: every call
 * is refused with NOT_LEADER naming the leader.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { CoordinatorConfig } from '../config/config.js';
import { etcdSecurityOf, natsAuthOf } from '../config/connection-security.js';
import { createNatsBus, createObjectPieces, type NatsBus } from '../bus/index.js';
import { CkptError } from '../core/errors.js';
import { Coordinator } from '../coordinator/coordinator.js';
import type { Logger } from '../log/index.js';
import { createEtcdStore, type EtcdStore } from '../store/index.js';
import { CoordinatorMetrics, packageVersion, type JobFigures } from '../metrics/coordinator-metrics.js';
import { CoordinatorHost } from './coordinator-host.js';
import { startGrpcServer, type CoordinatorGrpcServer } from './grpc-server.js';
import { peerClientOptions, serverCredentials, serverTlsFiles } from './tls-config.js';
import { readCaFile, readIdentity } from '../core/tls-files.js';
import type { HttpTls } from '../metrics/http-endpoint.js';
import { AccessControl } from './access-control.js';
import { DashboardApi } from './dashboard-api.js';
import { clusterView, QuerySources, readiness } from './process-view.js';
import { DashboardAssets } from './dashboard-assets.js';
import { defaultHttpListen, startHttpServer, type CoordinatorHttpServer, type Readiness } from './http-server.js';
import { electionWatchBackoff } from './election.js';
import { Leadership, type LeaderTerm } from './leadership.js';

/** How often `runCoordinator` and `whenLeader` look at the election while they wait. */
const ELECTION_POLL_MS = 10;

/** A running coordinator process, leader or standby. */
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
 * Connects to etcd and NATS, serves gRPC and campaigns. Resolves once the
 * first election has an outcome: this process leads with its coordinator
 * started, or another coordinator is seen leading, or `etcdTimeoutMs`
 * passed without either (it keeps campaigning in the background).
 */
export async function runCoordinator(config: CoordinatorConfig, logger: Logger): Promise<RunningCoordinator> {
  const credentials = serverCredentials(config, logger);
  const metrics = new CoordinatorMetrics({ version: packageVersion() }, () => host.state === 'leading');
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
    faultHandling: { watchBackoff: electionWatchBackoff() },
  });
  const closeAdapters = async (): Promise<void> => {
    access.close();
    electionClient.close();
    await Promise.allSettled([bus.close(), store.close()]);
  };
  // The metrics count the events of the coordinator that runs while this process leads.
  let detachMetrics: (() => void) | undefined;
  const stopCounting = (): void => {
    detachMetrics?.();
    detachMetrics = undefined;
  };
  // Elections start only with `leadership.start()`, once everything below exists.
  const leadership: Leadership = new Leadership({
    client: electionClient,
    prefix: config.etcdPrefix,
    leaseTtlMs: config.leaseTtlMs,
    probeIntervalMs: config.leaderProbeIntervalMs,
    logger,
    onElected: (term) => host.lead(term),
    onDeposed: (why) => {
      stopCounting();
      host.follow(why);
    },
  });
  let server: CoordinatorGrpcServer | undefined;
  const host = new CoordinatorHost({
    create: (term) => {
      stopCounting();
      const coordinator = createCoordinator(config, { logger, store, bus, metrics }, term, (why) =>
        leadership.stepDown(why),
      );
      detachMetrics = metrics.attach(coordinator.events, () => jobFigures(coordinator));
      return coordinator;
    },
    leader: () => leadership.leader,
    onServing: (serving) => {
      server?.setServing(serving);
      const leading = host.coordinator;
      if (serving && leading !== undefined) void readBackLatest(leading, () => host.coordinator === leading, metrics);
    },
    onFailed: (why) => leadership.stepDown(why),
    logger,
  });
  try {
    server = await startGrpcServer({
      coordinators: host,
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
  let advertise = config.advertise ?? server.address;
  const sources = new QuerySources(host, leadership, () => advertise, peerClientOptions(config));
  const api = new DashboardApi({
    cluster: () => clusterView(host, leadership, advertise),
    source: () => sources.current(),
    access,
    logger,
  });
  let http: CoordinatorHttpServer;
  try {
    http = await startHttp(config, { metrics, api, tls: httpTls(config) }, () => readiness(host, leadership), logger);
  } catch (err) {
    server.forceShutdown();
    await closeAdapters();
    throw err;
  }
  advertise = config.advertise ?? server.address;
  leadership.start(advertise);
  const closeAll = async (): Promise<void> => {
    stopCounting();
    await http.close();
    sources.close();
    await closeAdapters();
  };
  const running = runningCoordinator(config, { server, http, metrics }, host, leadership, advertise, closeAll);
  await firstOutcome(host, leadership, config.etcdTimeoutMs);
  return running;
}

/** What every coordinator of the process shares. */
interface ProcessParts {
  logger: Logger;
  store: EtcdStore;
  bus: NatsBus;
  metrics: CoordinatorMetrics;
}

function createCoordinator(
  config: CoordinatorConfig,
  { logger, store, bus, metrics }: ProcessParts,
  term: LeaderTerm,
  stepDown: (why: string) => void,
): Coordinator {
  return new Coordinator({
    store,
    bus,
    logger: logger.child({ term: term.term }),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    idBlockSize: config.idBlockSize,
    historySize: config.historySize,
    leadership: { guard: { key: term.key, createRevision: term.createRevision }, term: term.term },
    onLeadershipLost: (err) => stepDown(err.message),
    limits: config,
    stateUriSchemes: config.stateUriSchemes,
    standbyTimeoutMs: config.standbyTimeoutMs,
    stateCleanup: {
      pieces: createObjectPieces(bus.connection),
      orphanGraceMs: config.orphanGraceMs,
      stateSweepIntervalMs: config.stateSweepIntervalMs,
      canceledStateRetentionMs: config.canceledStateRetentionMs,
    },
    observer: metrics.timings,
  });
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

/** The figures of the coordinator's running jobs, which the metrics read when scraped. */
function* jobFigures(coordinator: Coordinator): Generator<JobFigures> {
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

/**
 * Reads back, at the start of a term, each job's newest completed
 * checkpoint, so that the metrics show it before this leader commits one;
 * stops once the term is over. Failures leave the figure to the next commit.
 */
async function readBackLatest(
  coordinator: Coordinator,
  current: () => boolean,
  metrics: CoordinatorMetrics,
): Promise<void> {
  for (const { jobId } of [...jobFigures(coordinator)]) {
    if (!current()) return;
    const summaries = await coordinator.listCheckpoints(jobId).catch(() => []);
    const newest = summaries.find((s) => s.state === 'CHECKPOINT_STATE_COMPLETED');
    if (newest !== undefined && current()) metrics.knownCompleted(newest);
  }
}

function runningCoordinator(
  config: CoordinatorConfig,
  servers: { server: CoordinatorGrpcServer; http: CoordinatorHttpServer; metrics: CoordinatorMetrics },
  host: CoordinatorHost,
  leadership: Leadership,
  advertise: string,
  closeAdapters: () => Promise<void>,
): RunningCoordinator {
  const { server, http, metrics } = servers;
  let ending: Promise<void> | undefined;
  return {
    address: server.address,
    httpAddress: http.address,
    metrics,
    advertise,
    get coordinator() {
      return host.current();
    },
    get isLeader() {
      return host.state === 'leading';
    },
    get leader() {
      return leadership.leader;
    },
    get term() {
      return host.state === 'leading' ? leadership.term : undefined;
    },
    async whenLeader(timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (host.state !== 'leading') {
        if (host.state === 'stopped') throw new CkptError('SHUTTING_DOWN', 'the coordinator process has stopped');
        if (Date.now() >= until) throw new CkptError('NOT_LEADER', `not elected leader within ${timeoutMs} ms`);
        await delay(ELECTION_POLL_MS);
      }
    },
    stop() {
      ending ??= (async () => {
        const drained = server.shutdown(config.shutdownGraceMs);
        await host.stop();
        await leadership.stop(true);
        await drained;
        await closeAdapters();
      })();
      return ending;
    },
    kill() {
      // The coordinator stops acting before the server drops its sessions, as if the process died.
      ending ??= (async () => {
        const halted = host.coordinator?.stop();
        server.forceShutdown();
        await Promise.all([halted, host.stop(), leadership.stop(false)]);
        await closeAdapters();
      })();
      server.forceShutdown();
      return ending;
    },
  };
}

/** Waits until this process leads, another is seen leading, or `timeoutMs` passed. */
async function firstOutcome(host: CoordinatorHost, leadership: Leadership, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  const decided = (): boolean =>
    host.state === 'leading' || (leadership.state === 'campaigning' && leadership.leader !== undefined);
  while (!decided() && Date.now() < until) await delay(ELECTION_POLL_MS);
}
