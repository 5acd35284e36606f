/**
 * Coordinator processes of the CLI on one prefix, for tests that pause or
 * kill a coordinator as a whole process (SIGSTOP, SIGKILL): each on a free
 * loopback address, stopped in the test's teardown, and every "coordinator
 * started" log line recorded.
 */
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { freePort } from '../../src/dev/index.js';
import { ManagedChild } from '../chaos/child.js';
import type { TestPrefix } from './prefix.js';
import type { TestServers } from './servers.js';

const CLI = join(process.cwd(), 'src', 'cli', 'main.ts');

/** A "coordinator started" line: which process, when, in which term. */
export interface CoordinatorStart {
  from: number;
  time: number;
  term: number;
}

/** The processes, their addresses, and the starts they logged so far. */
export interface CoordinatorProcesses {
  addresses: string[];
  children: ManagedChild[];
  started: CoordinatorStart[];
}

/** `count` coordinator processes, not started yet; the test's teardown stops them. */
export async function coordinatorProcesses(
  t: ExecutionContext,
  servers: TestServers,
  prefix: TestPrefix,
  count: number,
): Promise<CoordinatorProcesses> {
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(`127.0.0.1:${await freePort()}`);
  const started: CoordinatorStart[] = [];
  const children = addresses.map(
    (address, i) =>
      new ManagedChild({
        label: `coordinator-${i}`,
        args: () => [
          CLI,
          'coordinator',
          ...['--etcd', servers.etcdUrl],
          ...['--nats', servers.natsUrl],
          ...['--listen', address],
          ...['--etcd-prefix', prefix.etcd],
          ...['--subject-prefix', prefix.nats],
          ...['--log-level', 'info'],
        ],
        onLine: (line) => {
          try {
            const entry = JSON.parse(line) as { msg?: string; time?: number; term?: number };
            if (entry.msg === 'coordinator started') {
              started.push({ from: i, time: entry.time ?? 0, term: entry.term ?? 0 });
            }
          } catch {
            // Not a log line (a warning of node's own).
          }
        },
      }),
  );
  t.teardown(() => Promise.all(children.map((c) => c.stop(2000))).then(() => undefined));
  return { addresses, children, started };
}
