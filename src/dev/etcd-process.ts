/**
 * A local etcd server (one member, or a small cluster) on loopback ports with a
 * temporary data directory, for tests, the demo and benchmarks.
 */
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../log/index.js';
import { trackTempDir } from './child-registry.js';
import { freePort } from './free-port.js';
import { retryOnFreshPorts, ServerProcess, type ManagedServer, type ServerProcessSpec } from './server-process.js';

/** Options of `startEtcd`. */
export interface EtcdOptions {
  /** Data directory, kept on `stop()`. Default: a new `ckpt-etcd-*` directory under the OS temp dir, removed on `stop()`. */
  dataDir?: string;
  /** Member name. Default: `n1`. */
  name?: string;
  /** Client port. Default: a free port (and a retry with fresh ports if it gets taken before etcd binds it). */
  clientPort?: number;
  /** Peer port. Default: a free port. */
  peerPort?: number;
  /** Time to become healthy. Default: `DEFAULT_START_TIMEOUT_MS` (15 s). */
  startTimeoutMs?: number;
  /** Extra command-line flags passed to etcd. Default: none. */
  extraArgs?: readonly string[];
  /**
   * Serve clients and peers over TLS only, requiring certificates signed by
   * `caFile` from both; the health check then goes to a plain-HTTP metrics
   * port on loopback, which serves only `/health` and `/metrics`.
   * Default: plain HTTP.
   */
  tls?: EtcdTlsOptions;
  /** Receives lifecycle events at debug level. Default: silent. */
  logger?: Logger;
  /** Aborts the start: the process is killed and the promise rejects. */
  signal?: AbortSignal;
}

/** TLS files of an etcd member (PEM): its certificate, valid for 127.0.0.1, and the CA its clients' and peers' certificates chain to. */
export interface EtcdTlsOptions {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** A running local etcd member. */
export interface EtcdProcess extends ManagedServer {
  /** Member name. */
  readonly name: string;
  /** `http://127.0.0.1:<client port>` (`https://` with TLS), for the `etcd3` client's `hosts`. */
  readonly clientUrl: string;
  /** `http://127.0.0.1:<peer port>`. */
  readonly peerUrl: string;
}

/** A running local etcd cluster. */
export interface EtcdCluster {
  readonly members: readonly EtcdProcess[];
  /** Every member's client URL. */
  readonly clientUrls: readonly string[];
  /** Stops every member. Idempotent. */
  stop(): Promise<void>;
}

interface MemberPlan {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  ownsDataDir: boolean;
  /** Where `/health` is read: the client URL, or with TLS a plain-HTTP metrics URL. */
  healthBase: string;
}

/**
 * Starts one etcd member and resolves once `/health` reports healthy. Rejects
 * with a `ServerStartError` quoting etcd's log if it exits or times out first.
 */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdProcess> {
  const fixedPorts = options.clientPort !== undefined || options.peerPort !== undefined;
  for (let attempt = 1; ; attempt++) {
    const plan = await planMember(options.name ?? 'n1', options);
    const member = createMember(plan, `${plan.name}=${plan.peerUrl}`, options);
    try {
      await member.start(options.signal);
      return member;
    } catch (error) {
      await member.stop();
      if (!retryOnFreshPorts(error, fixedPorts, attempt)) throw error;
    }
  }
}

/**
 * Starts an `size`-member etcd cluster (default 3) on loopback and resolves
 * once every member is healthy, i.e. the cluster has a leader.
 */
export async function startEtcdCluster(
  size = 3,
  options: Omit<EtcdOptions, 'name' | 'dataDir' | 'clientPort' | 'peerPort'> = {},
): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    const plans = await Promise.all(Array.from({ length: size }, (_, i) => planMember(`n${i + 1}`, options)));
    const initialCluster = plans.map((p) => `${p.name}=${p.peerUrl}`).join(',');
    const members = plans.map((plan) => createMember(plan, initialCluster, options));
    const stop = async (): Promise<void> => void (await Promise.all(members.map((m) => m.stop())));
    const started = await Promise.allSettled(members.map((m) => m.start(options.signal)));
    const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failure) return { members, clientUrls: members.map((m) => m.clientUrl), stop };
    await stop();
    if (!retryOnFreshPorts(failure.reason, false, attempt)) throw failure.reason;
  }
}

class EtcdMember extends ServerProcess implements EtcdProcess {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;

  constructor(plan: MemberPlan, spec: ServerProcessSpec) {
    super(spec);
    this.name = plan.name;
    this.clientUrl = plan.clientUrl;
    this.peerUrl = plan.peerUrl;
  }
}

async function planMember(name: string, options: EtcdOptions): Promise<MemberPlan> {
  const clientPort = options.clientPort ?? (await freePort());
  const peerPort = options.peerPort ?? (await freePort());
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'ckpt-etcd-')));
  if (ownsDataDir) trackTempDir(dataDir);
  else await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const scheme = options.tls === undefined ? 'http' : 'https';
  const clientUrl = `${scheme}://127.0.0.1:${clientPort}`;
  return {
    name,
    clientUrl,
    peerUrl: `${scheme}://127.0.0.1:${peerPort}`,
    dataDir,
    ownsDataDir,
    healthBase: options.tls === undefined ? clientUrl : `http://127.0.0.1:${await freePort()}`,
  };
}

function createMember(plan: MemberPlan, initialCluster: string, options: EtcdOptions): EtcdMember {
  const logger = (options.logger ?? silentLogger()).child({ component: 'dev-etcd', member: plan.name });
  return new EtcdMember(plan, {
    label: `etcd ${plan.name}`,
    command: 'etcd',
    args: [...etcdArgs(plan, initialCluster), ...tlsArgs(plan, options.tls), ...(options.extraArgs ?? [])],
    healthUrl: `${plan.healthBase}/health`,
    isHealthy: (status, body) => status === 200 && isHealthyBody(body),
    dataDir: plan.dataDir,
    ownsDataDir: plan.ownsDataDir,
    ...(options.startTimeoutMs === undefined ? {} : { startTimeoutMs: options.startTimeoutMs }),
    logger,
  });
}

function etcdArgs(plan: MemberPlan, initialCluster: string): string[] {
  return [
    ['--name', plan.name],
    ['--data-dir', plan.dataDir],
    ['--listen-client-urls', plan.clientUrl],
    ['--advertise-client-urls', plan.clientUrl],
    ['--listen-peer-urls', plan.peerUrl],
    ['--initial-advertise-peer-urls', plan.peerUrl],
    ['--initial-cluster', initialCluster],
    ['--initial-cluster-state', 'new'],
  ].flat();
}

function tlsArgs(plan: MemberPlan, tls: EtcdTlsOptions | undefined): string[] {
  if (tls === undefined) return [];
  return [
    ['--cert-file', tls.certFile, '--key-file', tls.keyFile],
    ['--trusted-ca-file', tls.caFile, '--client-cert-auth'],
    ['--peer-cert-file', tls.certFile, '--peer-key-file', tls.keyFile],
    ['--peer-trusted-ca-file', tls.caFile, '--peer-client-cert-auth'],
    ['--listen-metrics-urls', plan.healthBase],
  ].flat();
}

function isHealthyBody(body: string): boolean {
  try {
    return (JSON.parse(body) as { health?: unknown }).health === 'true';
  } catch {
    return false;
  }
}
