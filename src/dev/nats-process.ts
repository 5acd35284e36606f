/**
 * A local NATS server with JetStream on loopback ports and a temporary store
 * directory, for tests, the demo and benchmarks.
 */
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../log/index.js';
import { trackTempDir } from './child-registry.js';
import { freePort } from './free-port.js';
import { retryOnFreshPorts, ServerProcess, type ManagedServer, type ServerProcessSpec } from './server-process.js';

/** Options of `startNats`. */
export interface NatsOptions {
  /** JetStream store directory, kept on `stop()`. Default: a new `ckpt-nats-*` directory under the OS temp dir, removed on `stop()`. */
  dataDir?: string;
  /** Server name. Default: `nats1`. */
  name?: string;
  /** Client port. Default: a free port (and a retry with fresh ports if it gets taken before the server binds it). */
  port?: number;
  /** HTTP monitoring port. Default: a free port. */
  monitorPort?: number;
  /** Time to become healthy. Default: `DEFAULT_START_TIMEOUT_MS` (15 s). */
  startTimeoutMs?: number;
  /** Extra command-line flags passed to nats-server. Default: none. */
  extraArgs?: readonly string[];
  /** Receives lifecycle events at debug level. Default: silent. */
  logger?: Logger;
  /** Aborts the start: the process is killed and the promise rejects. */
  signal?: AbortSignal;
}

/** A running local NATS server. */
export interface NatsProcess extends ManagedServer {
  /** Server name. */
  readonly name: string;
  /** `nats://127.0.0.1:<port>`, for `connect({ servers })`. */
  readonly url: string;
  /** `http://127.0.0.1:<monitor port>`, the monitoring endpoint (`/varz`, `/jsz`, `/healthz`). */
  readonly monitorUrl: string;
}

/** A running local NATS cluster with clustered JetStream. */
export interface NatsCluster {
  readonly servers: readonly NatsProcess[];
  /** Every server's client URL, for `connect({ servers })`. */
  readonly urls: readonly string[];
  /** Stops every server. Idempotent. */
  stop(): Promise<void>;
}

/** Options of `startNatsCluster`. */
export type NatsClusterOptions = Omit<NatsOptions, 'name' | 'dataDir' | 'port' | 'monitorPort'>;

interface NatsPlan {
  name: string;
  url: string;
  monitorUrl: string;
  dataDir: string;
  ownsDataDir: boolean;
  /** Cluster arguments (listen URL, routes, cluster name); empty for a single server. */
  clusterArgs: string[];
}

/**
 * Starts nats-server with JetStream and resolves once `/healthz` answers ok.
 * Rejects with a `ServerStartError` quoting the server's log if it exits or
 * times out first.
 */
export async function startNats(options: NatsOptions = {}): Promise<NatsProcess> {
  const fixedPorts = options.port !== undefined || options.monitorPort !== undefined;
  for (let attempt = 1; ; attempt++) {
    const server = createServer(await planServer(options.name ?? 'nats1', options), options);
    try {
      await server.start(options.signal);
      return server;
    } catch (error) {
      await server.stop();
      if (!retryOnFreshPorts(error, fixedPorts, attempt)) throw error;
    }
  }
}

/**
 * Starts a `size`-server NATS cluster (default 3) with clustered JetStream on
 * loopback and resolves once every server's `/healthz` answers ok, i.e.
 * JetStream has a meta leader.
 */
export async function startNatsCluster(size = 3, options: NatsClusterOptions = {}): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    const plans = await planCluster(size, options);
    const servers = plans.map((plan) => createServer(plan, options));
    const stop = async (): Promise<void> => void (await Promise.all(servers.map((s) => s.stop())));
    const started = await Promise.allSettled(servers.map((s) => s.start(options.signal)));
    const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failure) return { servers, urls: servers.map((s) => s.url), stop };
    await stop();
    if (!retryOnFreshPorts(failure.reason, false, attempt)) throw failure.reason;
  }
}

class NatsServer extends ServerProcess implements NatsProcess {
  readonly name: string;
  readonly url: string;
  readonly monitorUrl: string;

  constructor(plan: NatsPlan, spec: ServerProcessSpec) {
    super(spec);
    this.name = plan.name;
    this.url = plan.url;
    this.monitorUrl = plan.monitorUrl;
  }
}

async function planCluster(size: number, options: NatsClusterOptions): Promise<NatsPlan[]> {
  const routeUrls = await Promise.all(Array.from({ length: size }, async () => `nats://127.0.0.1:${await freePort()}`));
  const plans = routeUrls.map(async (listenUrl, i) => {
    const plan = await planServer(`nats${i + 1}`, options);
    const routes = routeUrls.filter((url) => url !== listenUrl).join(',');
    plan.clusterArgs = ['--cluster_name', 'ckpt', '--cluster', listenUrl, '--routes', routes];
    return plan;
  });
  return Promise.all(plans);
}

async function planServer(name: string, options: NatsOptions): Promise<NatsPlan> {
  const port = options.port ?? (await freePort());
  const monitorPort = options.monitorPort ?? (await freePort());
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'ckpt-nats-')));
  if (ownsDataDir) trackTempDir(dataDir);
  else await mkdir(dataDir, { recursive: true });
  const url = `nats://127.0.0.1:${port}`;
  return { name, url, monitorUrl: `http://127.0.0.1:${monitorPort}`, dataDir, ownsDataDir, clusterArgs: [] };
}

function createServer(plan: NatsPlan, options: NatsOptions): NatsServer {
  const logger = (options.logger ?? silentLogger()).child({ component: 'dev-nats', server: plan.name });
  const port = new URL(plan.url).port;
  const monitorPort = new URL(plan.monitorUrl).port;
  return new NatsServer(plan, {
    label: `nats-server ${plan.name}`,
    command: 'nats-server',
    args: [
      '-a',
      '127.0.0.1',
      '-p',
      port,
      '-m',
      monitorPort,
      '-n',
      plan.name,
      '-js',
      '-sd',
      plan.dataDir,
      ...plan.clusterArgs,
      ...(options.extraArgs ?? []),
    ],
    healthUrl: `${plan.monitorUrl}/healthz`,
    isHealthy: (status) => status === 200,
    dataDir: plan.dataDir,
    ownsDataDir: plan.ownsDataDir,
    ...(options.startTimeoutMs === undefined ? {} : { startTimeoutMs: options.startTimeoutMs }),
    logger,
  });
}
