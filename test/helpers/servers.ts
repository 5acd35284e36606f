/**
 * One etcd and one NATS server per test file. Call `useServers()` at the top
 * level of a test file: the servers start in `test.before` and stop in
 * `test.after.always`; tests read them from the returned handle.
 *
 * ```ts
 * const servers = useServers();
 * test('x', async (t) => {
 *   const prefix = uniquePrefix(t);
 *   const etcd = etcdClient(t, servers.etcdUrl);
 * });
 * ```
 */
import test from 'ava';
import { killLocalServersSync, startEtcd, startNats, type EtcdProcess, type NatsProcess } from '../../src/dev/index.js';

export { uniquePrefix, type TestPrefix } from './prefix.js';

/** Which servers a test file needs. */
export interface UseServersOptions {
  /** Start etcd. Default: true. */
  etcd?: boolean;
  /** Start NATS. Default: true. */
  nats?: boolean;
}

/** The servers of the current test file; reading one that was not started throws. */
export interface TestServers {
  readonly etcd: EtcdProcess;
  readonly nats: NatsProcess;
  /** `etcd.clientUrl`. */
  readonly etcdUrl: string;
  /** `nats.url`. */
  readonly natsUrl: string;
}

/**
 * The servers of a test file that starts its own (with TLS or permissions,
 * say): `current` is read at each use, once they run.
 */
export function ownServers(
  current: () => { etcd: EtcdProcess | undefined; nats: NatsProcess | undefined },
): TestServers {
  const started = <T>(what: T | undefined, name: string): T => {
    if (what === undefined) throw new Error(`the test file's ${name} is not running`);
    return what;
  };
  return {
    get etcd() {
      return started(current().etcd, 'etcd');
    },
    get nats() {
      return started(current().nats, 'NATS server');
    },
    get etcdUrl() {
      return started(current().etcd, 'etcd').clientUrl;
    },
    get natsUrl() {
      return started(current().nats, 'NATS server').url;
    },
  };
}

/**
 * Registers `test.before` / `test.after.always` hooks that start and stop the
 * servers of this test file. Call once, at module top level.
 */
export function useServers(options: UseServersOptions = {}): TestServers {
  let etcd: EtcdProcess | undefined;
  let nats: NatsProcess | undefined;
  cleanUpOnTerminate();
  test.before(async () => {
    [etcd, nats] = await Promise.all([
      options.etcd === false ? undefined : startEtcd(),
      options.nats === false ? undefined : startNats(),
    ]);
  });
  test.after.always(async () => {
    await Promise.all([etcd?.stop(), nats?.stop()]);
  });
  return {
    get etcd() {
      return required(etcd, 'etcd');
    },
    get nats() {
      return required(nats, 'nats');
    },
    get etcdUrl() {
      return required(etcd, 'etcd').clientUrl;
    },
    get natsUrl() {
      return required(nats, 'nats').url;
    },
  };
}

let terminateHookInstalled = false;

/**
 * ava ends a worker that exceeds its timeout with SIGTERM, which skips the
 * `exit` hook of the launchers; remove the servers' data, then die of the
 * same signal.
 */
function cleanUpOnTerminate(): void {
  if (terminateHookInstalled) return;
  terminateHookInstalled = true;
  process.once('SIGTERM', () => {
    killLocalServersSync();
    process.kill(process.pid, 'SIGTERM');
  });
}

function required<T>(server: T | undefined, name: string): T {
  if (server === undefined) throw new Error(`${name} is not running: useServers() starts it in test.before`);
  return server;
}
