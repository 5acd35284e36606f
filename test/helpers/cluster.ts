/**
 * Several coordinator processes on one etcd prefix and one subject prefix,
 * for tests of high availability: one leads, the others stand by.
 */
import type { ExecutionContext } from 'ava';
import { resolveConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';
import { runCoordinator, type RunningCoordinator } from '../../src/server/run.js';
import { uniquePrefix, type TestPrefix } from './prefix.js';
import type { TestServers } from './servers.js';
import { eventually } from './wait.js';

/** Lease TTL of every coordinator of a test cluster; etcd grants at least its own minimum (about 2 s). */
export const CLUSTER_LEASE_TTL_MS = 1000;
/** A fail-over takes the lease's expiry in etcd plus a campaign and a start: a few TTLs. */
export const CLUSTER_FAILOVER_MS = 10_000;

/** A test's coordinators. */
export interface TestCluster {
  prefix: TestPrefix;
  /** In the order they were started. */
  nodes: RunningCoordinator[];
  /** Their gRPC addresses, in the same order. */
  addresses: string[];
  /** The one leader, once there is exactly one among the nodes still running. */
  leader(alive?: RunningCoordinator[]): Promise<RunningCoordinator>;
  /** The term of the node leading now, if one does. */
  term(): number | undefined;
}

/** `n` coordinators on one etcd prefix and one subject prefix, started one after another, stopped when the test ends. */
export async function startCluster(t: ExecutionContext, servers: TestServers, n: number): Promise<TestCluster> {
  const prefix = uniquePrefix(t);
  const config = resolveConfig(
    {
      etcd: [servers.etcdUrl],
      nats: [servers.natsUrl],
      listen: '127.0.0.1:0',
      etcdPrefix: prefix.etcd,
      subjectPrefix: prefix.nats,
      leaseTtlMs: CLUSTER_LEASE_TTL_MS,
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 2000,
      shutdownGraceMs: 2000,
      logLevel: 'silent',
      stateUriSchemes: 'file,nats-obj,sim',
    },
    {},
  );
  const nodes: RunningCoordinator[] = [];
  t.teardown(() => Promise.allSettled(nodes.map((node) => node.stop())).then(() => undefined));
  for (let i = 0; i < n; i++) nodes.push(await runCoordinator(config, silentLogger()));
  return {
    prefix,
    nodes,
    addresses: nodes.map((node) => node.address),
    async leader(alive = nodes) {
      return eventually(
        () => {
          const leaders = alive.filter((node) => node.isLeader);
          return leaders.length === 1 ? leaders[0] : undefined;
        },
        { timeoutMs: CLUSTER_FAILOVER_MS, what: 'exactly one leader' },
      );
    },
    term() {
      return nodes.find((node) => node.isLeader)?.term?.term;
    },
  };
}
