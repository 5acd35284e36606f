/**
 * Coordinators of one prefix that spread their jobs over job groups, run
 * in the test's process: their config, their start (stopped when the test
 * ends), job ids of every group, and the wait until they share the groups.
 */
import type { ExecutionContext } from 'ava';
import { resolveConfig, type CoordinatorConfigInput } from '../../src/config/index.js';
import { jobGroupOf } from '../../src/core/job-groups.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { runCoordinator, type RunningCoordinator } from '../../src/server/run.js';
import { startSimulatedWorker, type SimulatedWorker } from '../sim/index.js';
import type { TestPrefix } from './prefix.js';
import type { TestServers } from './servers.js';
import { eventually } from './wait.js';

/** The lease TTL of the coordinators: short, so that a kill moves a group within seconds. */
export const GROUPS_LEASE_TTL_MS = 2000;
/** Joins settle after twice the lease TTL; a few rounds of that and a takeover. */
export const BALANCED_MS = 30_000;

/** The config of a coordinator of the test's prefixes with `groups` job groups. */
export function groupsConfig(
  servers: TestServers,
  prefix: TestPrefix,
  groups: number,
  overrides: CoordinatorConfigInput = {},
) {
  return resolveConfig(
    {
      etcd: [servers.etcdUrl],
      nats: [servers.natsUrl],
      listen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      etcdPrefix: prefix.etcd,
      subjectPrefix: prefix.nats,
      leaseTtlMs: GROUPS_LEASE_TTL_MS,
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 3000,
      shutdownGraceMs: 2000,
      logLevel: 'silent',
      stateUriSchemes: 'file,nats-obj,sim',
      jobGroups: groups,
      ...overrides,
    },
    {},
  );
}

/** Starts a coordinator with `groups` job groups, stopped when the test ends. */
export async function startGroupsCoordinator(
  t: ExecutionContext,
  servers: TestServers,
  prefix: TestPrefix,
  groups: number,
  overrides?: CoordinatorConfigInput,
): Promise<RunningCoordinator> {
  const node = await runCoordinator(groupsConfig(servers, prefix, groups, overrides), silentLogger());
  t.teardown(() => node.stop());
  return node;
}

/** Job ids `job-<i>`, at least `perGroup` in each of `groups` groups. */
export function jobIdsOfGroups(groups: number, perGroup: number): string[] {
  const counts = new Array<number>(groups).fill(0);
  const ids: string[] = [];
  for (let i = 0; counts.some((c) => c < perGroup); i++) {
    const id = `job-${i}`;
    const group = jobGroupOf(id, groups);
    if ((counts[group] ?? 0) >= perGroup) continue;
    counts[group] = (counts[group] ?? 0) + 1;
    ids.push(id);
  }
  return ids;
}

/** A job of a source and a sink, as the simulated workers run it. */
export const twoTaskSpec = (jobId: string): JobSpec => ({
  jobId,
  tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
});

/** The nodes leading each of `groups` groups, as they say. */
export function leadersOfGroups(nodes: readonly RunningCoordinator[], groups: number): RunningCoordinator[][] {
  return Array.from({ length: groups }, (_, g) => nodes.filter((n) => n.group(g).isLeader));
}

/** Waits until each node leads exactly one group (as many groups as nodes); the leader of each group. */
export async function balancedGroups(nodes: readonly RunningCoordinator[]): Promise<RunningCoordinator[]> {
  return eventually(
    () => {
      const leaders = leadersOfGroups(nodes, nodes.length);
      if (!leaders.every((l) => l.length === 1)) return undefined;
      const byGroup = leaders.map((l) => l[0]!);
      return new Set(byGroup).size === nodes.length ? byGroup : undefined;
    },
    { timeoutMs: BALANCED_MS, what: 'each coordinator leading one job group' },
  );
}

/** A simulated worker of `jobId` (`twoTaskSpec`), following its leader among `addresses`; closed when the test ends. */
export async function groupsSimWorker(
  t: ExecutionContext,
  servers: TestServers,
  prefix: TestPrefix,
  addresses: string[],
  jobId: string,
): Promise<SimulatedWorker> {
  const w = await startSimulatedWorker({
    coordinator: addresses,
    nats: [servers.natsUrl],
    subjectPrefix: prefix.nats,
    jobId,
    workerId: `w-${jobId}`,
    taskIds: ['src', 'sink'],
    spec: twoTaskSpec(jobId),
    reattach: true,
    logger: silentLogger(),
  });
  t.teardown(() => w.close());
  return w;
}
