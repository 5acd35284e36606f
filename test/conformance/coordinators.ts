/**
 * The coordinators of one scenario: real `ckpt coordinator` processes on
 * the suite's etcd and NATS under the scenario's own prefixes, so that a
 * scenario can SIGKILL the leader.
 */
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from '../../src/dev/index.js';
import { ManagedChild } from '../chaos/child.js';
import { leaderOf, probeAll, ProbeClient } from '../chaos/leader.js';

/** One coordinator process. */
export interface CoordinatorNode {
  readonly index: number;
  /** Its gRPC address. */
  readonly address: string;
  readonly child: ManagedChild;
  /** Talks to this coordinator only (never follows a NOT_LEADER answer). */
  readonly probe: ProbeClient;
}

/** Where and how the coordinators run. */
export interface CoordinatorSetup {
  repo: string;
  etcdUrl: string;
  natsUrl: string;
  etcdPrefix: string;
  subjectPrefix: string;
  logDir: string;
  /** Added to every coordinator's flags. */
  extraArgs: readonly string[];
}

/** Starts `n` coordinators; they elect a leader among themselves. */
export async function startCoordinators(setup: CoordinatorSetup, n: number): Promise<CoordinatorNode[]> {
  const nodes: CoordinatorNode[] = [];
  for (let index = 0; index < n; index++) {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const address = `127.0.0.1:${grpcPort}`;
    const child = new ManagedChild({
      label: `coordinator-${index}`,
      logFile: join(setup.logDir, `coordinator-${index}.log`),
      args: () => [
        join(setup.repo, 'src', 'cli', 'main.ts'),
        'coordinator',
        ...['--etcd', setup.etcdUrl],
        ...['--nats', setup.natsUrl],
        ...['--listen', address],
        ...['--http-listen', `127.0.0.1:${httpPort}`],
        ...['--etcd-prefix', setup.etcdPrefix],
        ...['--subject-prefix', setup.subjectPrefix],
        ...['--heartbeat-interval-ms', '250'],
        ...['--heartbeat-timeout-ms', '4000'],
        ...['--shutdown-grace-ms', '1000'],
        ...['--log-level', 'info'],
        ...(n > 1 ? ['--lease-ttl-ms', '2000'] : []),
        ...setup.extraArgs,
      ],
    });
    child.start();
    nodes.push({ index, address, child, probe: new ProbeClient(address) });
  }
  return nodes;
}

/**
 * The index of the coordinator that leads `jobId`'s coordinators (a job
 * that does not exist yet still gets an answer from the leader), waiting up
 * to `timeoutMs`; throws with the coordinators' log tails otherwise.
 */
export async function awaitLeader(
  nodes: readonly CoordinatorNode[],
  jobId: string,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = nodes.filter((n) => n.child.running);
    const probes = await probeAll(
      alive.map((n) => n.probe),
      jobId,
    );
    const leader = leaderOf(probes);
    const standbys = probes.filter((p) => p.role === 'standby').length;
    if (leader !== undefined && (alive.length === 1 || standbys === alive.length - 1)) {
      return (alive[leader] as CoordinatorNode).index;
    }
    if (Date.now() > deadline) {
      const tails = nodes.map((c) => `--- ${c.child.spec.label} ---\n${c.child.tail(8)}`).join('\n');
      throw new Error(`no coordinator leads after ${timeoutMs} ms (${probes.map((p) => p.role).join(', ')})\n${tails}`);
    }
    await delay(200);
  }
}

/** Stops every coordinator (SIGTERM, then SIGKILL) and closes the probes. */
export async function stopCoordinators(nodes: readonly CoordinatorNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.child.stop(2000)));
  for (const n of nodes) n.probe.close();
}
