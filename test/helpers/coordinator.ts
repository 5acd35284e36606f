/**
 * A coordinator for one test: started in-process against the test file's
 * etcd and NATS under the test's own prefixes, with clients, and torn down
 * when the test ends.
 */
import type { ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import {
  createCoordinatorClient,
  createQueryClient,
  type ClientOptions,
  type ClientTlsOptions,
  type CoordinatorClient,
  type QueryClient,
} from '../../src/client/index.js';
import { resolveConfig, type CoordinatorConfigInput } from '../../src/config/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger, type Logger } from '../../src/log/index.js';
import { runCoordinator, type RunningCoordinator } from '../../src/server/run.js';
import { startSimulatedWorker, type SimulatedWorker, type SimulatedWorkerOptions } from '../sim/index.js';
import { uniquePrefix, type TestPrefix } from './prefix.js';
import { eventually } from './wait.js';
import type { TestServers } from './servers.js';

/** A test's coordinator, its clients and its namespace. */
export interface TestCoordinator {
  readonly prefix: TestPrefix;
  readonly address: string;
  running: RunningCoordinator;
  readonly client: CoordinatorClient;
  readonly query: QueryClient;
  /** A raw etcd client, for reading what the coordinator wrote. */
  readonly etcd: Etcd3;
  /** Stops the coordinator and starts a new one on the same prefixes. */
  restart(): Promise<void>;
  /** Starts another coordinator process on the same prefixes (a standby while this one leads); stopped at the test's end. */
  standby(): Promise<RunningCoordinator>;
  /** Starts a simulated worker against this coordinator. */
  worker(
    options: Omit<SimulatedWorkerOptions, 'coordinator' | 'nats' | 'subjectPrefix' | 'logger'>,
  ): Promise<SimulatedWorker>;
  /** Resolves when every task of the job has restored and the job runs (attempt RUNNING). */
  started(jobId: string): Promise<void>;
  /** Every key and value under the test's etcd prefix but the jobs' statistics, for before/after comparisons. */
  dump(): Promise<Record<string, string>>;
}

/** Starts a coordinator for the test `t`; everything stops at the test's end. */
export async function startTestCoordinator(
  t: ExecutionContext,
  servers: TestServers,
  overrides: CoordinatorConfigInput = {},
  options: { logger?: Logger; tls?: ClientTlsOptions } = {},
): Promise<TestCoordinator> {
  const logger = options.logger ?? silentLogger();
  const prefix = uniquePrefix(t);
  const config = resolveConfig(
    {
      etcd: [servers.etcdUrl],
      nats: [servers.natsUrl],
      listen: '127.0.0.1:0',
      etcdPrefix: prefix.etcd,
      subjectPrefix: prefix.nats,
      heartbeatIntervalMs: 200,
      // Long enough that a test process starved by a loaded machine keeps its sessions.
      heartbeatTimeoutMs: 10_000,
      logLevel: 'silent',
      shutdownGraceMs: 2000,
      // Simulated workers acknowledge sim:// state handles.
      stateUriSchemes: 'file,nats-obj,sim',
      ...overrides,
    },
    {},
  );
  let running = await runCoordinator(config, logger);
  const clientOptions: ClientOptions = {
    ...(config.authToken === undefined ? {} : { token: config.authToken }),
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  };
  const address = running.address;
  const client = createCoordinatorClient(address, clientOptions);
  const query = createQueryClient(address, clientOptions);
  const etcd = new Etcd3({
    hosts: servers.etcdUrl,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + 5000) }),
  });
  const workers: SimulatedWorker[] = [];
  t.teardown(async () => {
    await Promise.allSettled(workers.map((w) => w.close()));
    client.close();
    query.close();
    await running.stop();
    etcd.close();
  });
  const handle: TestCoordinator = {
    prefix,
    address,
    get running() {
      return running;
    },
    set running(r) {
      running = r;
    },
    client,
    query,
    etcd,
    async restart() {
      await running.stop();
      running = await runCoordinator({ ...config, listen: address }, logger);
      // The clients' channels saw the old server go away; wait until they reconnect.
      await Promise.all([client.waitForReady(10_000), query.waitForReady(10_000)]);
    },
    async standby() {
      const other = await runCoordinator({ ...config, listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' }, logger);
      t.teardown(() => other.stop());
      return other;
    },
    async worker(options) {
      const w = await startSimulatedWorker({
        ...options,
        coordinator: address,
        nats: [servers.natsUrl],
        subjectPrefix: prefix.nats,
        logger: silentLogger(),
        ...(clientOptions.token === undefined ? {} : { token: clientOptions.token }),
        ...(clientOptions.tls === undefined ? {} : { tls: clientOptions.tls }),
      });
      workers.push(w);
      return w;
    },
    async started(jobId) {
      await eventually(async () => (await client.getJob({ jobId })).job?.attempt === 'JOB_ATTEMPT_RUNNING', {
        what: `job ${jobId} running`,
      });
    },
    async dump() {
      const all = await etcd.getAll().prefix(prefix.etcd).strings();
      // The leader writes a job's statistics on its own schedule (aborts and recoveries in
      // batches, seconds later): they belong to no one request.
      return Object.fromEntries(Object.entries(all).filter(([key]) => !/\/jobs\/[^/]+\/stats$/.test(key)));
    },
  };
  return handle;
}

/** A job spec: `sources` sources each feeding one of `sinks` sinks round-robin. */
export function fanInSpec(jobId: string, sources: number, sinks: number, policy: JobSpec['policy'] = {}): JobSpec {
  const src = Array.from({ length: sources }, (_, i) => ({ taskId: `src-${i}` }));
  const snk = Array.from({ length: sinks }, (_, i) => ({
    taskId: `sink-${i}`,
    inputs: src.filter((_, j) => j % sinks === i).map((s) => s.taskId),
  }));
  return { jobId, tasks: [...src, ...snk.filter((s) => s.inputs.length > 0)], policy };
}

/** A job of `n` independent source tasks. */
export function sourcesSpec(jobId: string, n: number, policy: JobSpec['policy'] = {}): JobSpec {
  return { jobId, tasks: Array.from({ length: n }, (_, i) => ({ taskId: `t${String(i).padStart(5, '0')}` })), policy };
}
