/**
 * Everything a fault-suite run starts: a 3-member etcd cluster, NATS (one
 * server or a 3-node JetStream cluster), a TCP proxy on every link from a
 * coordinator or a worker to a server, the coordinator processes, and
 * the word count jobs, each with its own streams and three worker
 * processes. The feeder and the checks reach the servers directly, never
 * through a proxy.
 *
 * By default the topology is `make cluster`'s (`startSecureCluster`): TLS
 * with client certificates on every link (the proxies pass it through),
 * a least-privilege user per role on NATS and etcd, mutual TLS and the
 * access policy on gRPC. The feeder, the checks and the probes connect with
 * credentials of their own: the feeder and checker NATS users, etcd's root
 * (the history check reads every key), the operator's certificate.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import type { IOptions } from 'etcd3';
import { coordinatorFlagNames } from '../../src/cli/coordinator-flags.js';
import { loadNatsAuth, type NatsAuthOptions } from '../../src/bus/index.js';
import {
  freePort,
  startEtcdCluster,
  startNats,
  startNatsCluster,
  startSecureCluster,
  startTcpProxy,
  type EtcdCluster,
  type NatsProcess,
  type SecureCluster,
  type TcpProxy,
} from '../../src/dev/index.js';
import {
  CHECKER,
  FEEDER,
  wordCountClients,
  wordCountSecureJob,
  workerSecurityFlags,
} from '../../examples/wordcount/secure.js';
import {
  DEFAULT_JOB_ID,
  WORKER_TASKS,
  wordCountIo,
  wordCountSpec,
  type WordCountIo,
} from '../../examples/wordcount/job.js';
import { ManagedChild } from './child.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { parseCoordinatorLine, type CoordinatorEvent } from './coordinator-log.js';
import { leaderOf, probeAll, ProbeClient } from './leader.js';
import type { ChaosConfig } from './options.js';

/** The ids of the `n` word count jobs a run has: `wordcount`, then `wordcount-2`, `wordcount-3`, ... */
export function chaosJobIds(n: number): string[] {
  return Array.from({ length: n }, (_, j) => (j === 0 ? DEFAULT_JOB_ID : `${DEFAULT_JOB_ID}-${j + 1}`));
}

/** Members of the etcd cluster. */
export const ETCD_MEMBERS = 3;

/** How long the streams remember publication ids: longer than any run, so a retried publication is never stored twice. */
const DUPLICATE_WINDOW_MS = 10 * 60_000;

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'src', 'cli', 'main.ts');
const WORKER = join(REPO, 'examples', 'wordcount', 'worker.ts');

/** One coordinator process and its links. */
export interface CoordinatorNode {
  readonly index: number;
  /** Its gRPC address; the same across restarts. */
  readonly address: string;
  readonly child: ManagedChild;
  /** Its links to each etcd member, in member order. */
  readonly etcdLinks: readonly TcpProxy[];
  /** Its links to each NATS server. */
  readonly natsLinks: readonly TcpProxy[];
  /** Talks to this coordinator only. */
  readonly client: ProbeClient;
}

/** One worker process and its links. */
export interface WorkerNode {
  /** Its place in `Stack.workers`, over every job. */
  readonly index: number;
  /** The job it runs tasks of. */
  readonly jobId: string;
  readonly tasks: readonly string[];
  readonly child: ManagedChild;
  readonly natsLinks: readonly TcpProxy[];
}

/** One word count job of the run. */
export interface ChaosJob {
  readonly jobId: string;
  /** Its input and output streams. */
  readonly io: WordCountIo;
  /** Its worker processes. */
  readonly workers: readonly WorkerNode[];
}

/** A running stack. */
export interface Stack {
  readonly etcd: EtcdCluster;
  readonly nats: readonly NatsProcess[];
  /** Direct NATS URLs, for the feeder and the checks. */
  readonly natsUrls: readonly string[];
  readonly coordinators: readonly CoordinatorNode[];
  /** The jobs, in order; the first is the reference word count (`wordcount`). */
  readonly jobs: readonly ChaosJob[];
  /** Every job's workers, job after job. */
  readonly workers: readonly WorkerNode[];
  /** Events parsed from every coordinator's log, in arrival order. */
  readonly events: CoordinatorEvent[];
  /** A direct NATS connection, as the checker: it creates the streams and reads them. */
  readonly nc: NatsConnection;
  /** A direct NATS connection, as the feeder: it publishes the input. */
  readonly feeder: NatsConnection;
  /** How the checks reach etcd directly: TLS and root's password on the secured topology. */
  readonly etcdSecurity: Pick<IOptions, 'credentials' | 'auth'> | undefined;
  /** The directory every worker keeps its task state in. */
  readonly stateDir: string;
  /** Stops everything and removes every temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** Closers of everything started so far, run in reverse order. */
type Closers = Array<() => Promise<void> | void>;

/** Starts the stack and the job; on failure stops what was started. */
export async function startStack(config: ChaosConfig): Promise<Stack> {
  const closers: Closers = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= closeAll(closers));
  try {
    return { ...(await build(config, closers)), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function build(config: ChaosConfig, closers: Closers): Promise<Omit<Stack, 'stop'>> {
  if (config.logDir !== undefined) await mkdir(config.logDir, { recursive: true });
  const { etcd, nats, secure } = await startServers(config, closers);
  config.log(
    `etcd ${etcd.clientUrls.join(', ')}; NATS ${nats.map((n) => n.url).join(', ')}` +
      (secure ? '; TLS, client certificates and least-privilege users on every link' : '; plain text'),
  );
  const natsUrls = nats.map((n) => n.url);
  const proxy = async (target: string, label: string): Promise<TcpProxy> => {
    const p = await startTcpProxy({ target, label });
    closers.push(() => p.close());
    return p;
  };
  const etcdHosts = etcd.clientUrls.map((u) => new URL(u).host);
  const natsHosts = natsUrls.map((u) => new URL(u).host);
  const events: CoordinatorEvent[] = [];
  const coordinators: CoordinatorNode[] = [];
  const accessPolicy = secure !== undefined && coordinatorFlagNames().includes('--access-policy');
  const probeTls = secure === undefined ? undefined : secure.grpcTls(secure.operator);
  for (let i = 0; i < config.coordinators; i++) {
    const etcdLinks = await Promise.all(etcdHosts.map((h, m) => proxy(h, `coordinator-${i} → etcd n${m + 1}`)));
    const natsLinks = await Promise.all(natsHosts.map((h, s) => proxy(h, `coordinator-${i} → nats${s + 1}`)));
    const address = `127.0.0.1:${await freePort()}`;
    const security = secure === undefined ? [] : secure.coordinatorFlags(i, { accessPolicy });
    const child = new ManagedChild({
      label: `coordinator-${i}`,
      ...logFile(config, `coordinator-${i}`),
      args: () => [...coordinatorArgs(config, address, etcdLinks, natsLinks, secure !== undefined), ...security],
      onLine: (line) => {
        const event = parseCoordinatorLine(line, i);
        if (event !== undefined) events.push(event);
      },
    });
    const client = new ProbeClient(address, probeTls);
    closers.push(() => client.close());
    closers.push(() => child.stop());
    coordinators.push({ index: i, address, child, etcdLinks, natsLinks, client });
  }
  for (const c of coordinators) c.child.start();
  const nc = await connectAs(natsUrls, 'chaos-checks', secure?.clientNatsAuth(CHECKER), closers);
  const feeder = secure === undefined ? nc : await connectAs(natsUrls, 'chaos-feeder', secure.clientNatsAuth(FEEDER), closers); // prettier-ignore
  const jobIds = chaosJobIds(config.jobs);
  for (const jobId of jobIds) await createStreams(nc, nats.length, wordCountIo(jobId));
  const leader = await awaitLeader(coordinators, jobIds[0] as string, config);
  for (const jobId of jobIds) await submit(coordinators, wordCountSpec(jobId, config.intervalMs), leader);
  config.log(
    `coordinators ${coordinators.map((c) => c.address).join(', ')}; coordinator-${leader} leads; ` +
      `jobs ${jobIds.join(', ')}`,
  );
  const stateDir = await mkdtemp(join(tmpdir(), 'ckpt-chaos-'));
  closers.push(() => rm(stateDir, { recursive: true, force: true }));
  const workers: WorkerNode[] = [];
  const jobs: ChaosJob[] = [];
  for (const jobId of jobIds) {
    const workerSecurity = secure === undefined ? [] : workerSecurityFlags(secure, jobId);
    const ofJob: WorkerNode[] = [];
    for (let i = 0; i < WORKER_TASKS.length; i++) {
      const label = jobId === DEFAULT_JOB_ID ? `worker-${i}` : `${jobId}-worker-${i}`;
      const natsLinks = await Promise.all(natsHosts.map((h, s) => proxy(h, `${label} → nats${s + 1}`)));
      const tasks = WORKER_TASKS[i] as readonly string[];
      const child: ManagedChild = new ManagedChild({
        label,
        ...logFile(config, label),
        args: (): string[] => [
          ...workerArgs(coordinators, natsLinks, { jobId, tasks, stateDir, workerId: `${label}-${child.starts}` }),
          ...workerSecurity,
        ],
      });
      closers.push(() => child.stop());
      const node = { index: workers.length, jobId, tasks, child, natsLinks };
      workers.push(node);
      ofJob.push(node);
    }
    jobs.push({ jobId, io: wordCountIo(jobId), workers: ofJob });
  }
  for (const w of workers) w.child.start();
  const etcdSecurity = secure?.etcdRootSecurity();
  return { etcd, nats, natsUrls, coordinators, jobs, workers, events, nc, feeder, etcdSecurity, stateDir };
}

/** etcd and NATS: secured (`startSecureCluster`) or in plain text. */
async function startServers(
  config: ChaosConfig,
  closers: Closers,
): Promise<{ etcd: EtcdCluster; nats: NatsProcess[]; secure: SecureCluster | undefined }> {
  if (config.secure) {
    const jobIds = chaosJobIds(config.jobs);
    const secure = await startSecureCluster({
      jobs: jobIds.map(wordCountSecureJob),
      clients: wordCountClients(jobIds),
      coordinators: config.coordinators,
      etcdMembers: ETCD_MEMBERS,
      natsServers: config.natsCluster ? 3 : 1,
      etcdPrefix: config.etcdPrefix,
      subjectPrefix: config.subjectPrefix,
      // Without --no_advertise, clients would learn the servers' own ports and bypass the proxies.
      natsExtraArgs: config.natsCluster ? ['--no_advertise'] : [],
    });
    closers.push(() => secure.stop());
    return { etcd: secure.etcd, nats: [...secure.nats.servers], secure };
  }
  const [etcd, nats] = await Promise.all([startEtcdCluster(ETCD_MEMBERS), startNatsServers(config)]);
  closers.push(
    () => etcd.stop(),
    () => Promise.all(nats.map((n) => n.stop())).then(() => undefined),
  );
  return { etcd, nats, secure: undefined };
}

/** A direct NATS connection, with `auth` when the topology is secured. */
async function connectAs(
  urls: readonly string[],
  name: string,
  auth: NatsAuthOptions | undefined,
  closers: Closers,
): Promise<NatsConnection> {
  const options = auth === undefined ? {} : { auth: loadNatsAuth(auth, (field) => `${name} ${field}`) };
  const nc = await connectNats([...urls], name, options);
  closers.push(() => nc.close().catch(() => undefined));
  return nc;
}

function logFile(config: ChaosConfig, label: string): { logFile?: string } {
  return config.logDir === undefined ? {} : { logFile: join(config.logDir, `${label}.log`) };
}

async function startNatsServers(config: ChaosConfig): Promise<NatsProcess[]> {
  if (!config.natsCluster) return [await startNats()];
  // Without --no_advertise, clients would learn the servers' own ports and bypass the proxies.
  const cluster = await startNatsCluster(3, { extraArgs: ['--no_advertise'] });
  return [...cluster.servers];
}

function coordinatorArgs(
  config: ChaosConfig,
  listen: string,
  etcdLinks: readonly TcpProxy[],
  natsLinks: readonly TcpProxy[],
  tls: boolean,
): string[] {
  return [
    CLI,
    'coordinator',
    ...['--etcd', etcdLinks.map((p) => `${tls ? 'https' : 'http'}://${p.address}`).join(',')],
    ...['--nats', natsLinks.map((p) => `nats://${p.address}`).join(',')],
    ...['--listen', listen],
    ...['--etcd-prefix', config.etcdPrefix],
    ...['--subject-prefix', config.subjectPrefix],
    ...['--heartbeat-interval-ms', String(config.heartbeatIntervalMs)],
    ...['--heartbeat-timeout-ms', String(config.heartbeatTimeoutMs)],
    ...['--etcd-timeout-ms', '2000'],
    ...['--shutdown-grace-ms', '2000'],
    ...['--log-level', 'info'],
    ...['--orphan-grace-ms', String(config.orphanGraceMs)],
    ...['--state-sweep-interval-ms', String(config.stateSweepIntervalMs)],
    // The lease TTL matters only where a standby can take over; a single coordinator keeps its default.
    ...(config.coordinators > 1 ? ['--lease-ttl-ms', String(config.leaderLeaseMs)] : []),
    ...(config.jobGroups > 1 ? ['--job-groups', String(config.jobGroups)] : []),
    ...config.coordinatorArgs,
  ];
}

/** A worker is told every coordinator; it attaches to whichever leads its job. */
function workerArgs(
  coordinators: readonly CoordinatorNode[],
  natsLinks: readonly TcpProxy[],
  w: { jobId: string; tasks: readonly string[]; stateDir: string; workerId: string },
): string[] {
  return [
    WORKER,
    ...['--coordinator', coordinators.map((c) => c.address).join(',')],
    ...['--nats', natsLinks.map((p) => `nats://${p.address}`).join(',')],
    ...['--job', w.jobId],
    '--own-streams',
    ...['--tasks', w.tasks.join(',')],
    ...['--state-dir', w.stateDir],
    ...['--worker-id', w.workerId],
  ];
}

/** A job's input stream, and the output stream its sink would create, replicated on every NATS server. */
async function createStreams(nc: NatsConnection, replicas: number, io: WordCountIo): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const duplicate_window = nanos(DUPLICATE_WINDOW_MS);
  await jsm.streams.add({ name: io.inputStream, subjects: [io.inputFilter], num_replicas: replicas, duplicate_window });
  await jsm.streams.add({
    name: io.outputStream,
    subjects: [io.outputSubject],
    num_replicas: replicas,
    duplicate_window,
  });
}

/**
 * Submits `spec` to the coordinator that leads (`leader`, as probed), or,
 * when that one names another leader for the job, to the others in turn.
 */
async function submit(coordinators: readonly CoordinatorNode[], spec: JobSpec, leader: number): Promise<void> {
  const order = [leader, ...coordinators.map((c) => c.index).filter((i) => i !== leader)];
  let last: unknown;
  for (const i of order) {
    try {
      await coordinators[i]!.client.submitJob(spec);
      return;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`job ${spec.jobId ?? '?'} could not be submitted to any coordinator`, { cause: last });
}

/**
 * Waits until exactly one coordinator answers as leader. With several
 * coordinators and none refusing as a standby, they have no leader election,
 * and a run would only measure that.
 */
async function awaitLeader(
  coordinators: readonly CoordinatorNode[],
  jobId: string,
  config: ChaosConfig,
): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const probes = await probeAll(
      coordinators.map((c) => c.client),
      jobId,
    );
    const leaders = probes.filter((p) => p.role === 'leader').length;
    const standbys = probes.filter((p) => p.role === 'standby').length;
    if (leaders === 1 && (coordinators.length === 1 || standbys > 0)) return leaderOf(probes) as number;
    if (leaders === coordinators.length && coordinators.length > 1) {
      throw new Error(
        `all ${coordinators.length} coordinators answer as leader and none as a standby (NOT_LEADER): ` +
          'these coordinators have no leader election; run with coordinators: 1',
      );
    }
    if (Date.now() > deadline) {
      const tails = coordinators.map((c) => `--- ${c.child.spec.label} ---\n${c.child.tail(10)}`).join('\n');
      throw new Error(`no coordinator leads after 60 s (${probes.map((p) => p.role).join(', ')})\n${tails}`);
    }
    await delay(200);
    if (config.signal?.aborted) throw new Error('aborted while waiting for a leader');
  }
}

async function closeAll(closers: Closers): Promise<void> {
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch {
      // Stopping goes on: one failed closer must not leave the others running.
    }
  }
}
