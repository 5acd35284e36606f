/**
 * One etcd and one NATS server together, as the demo and most tests need them.
 */
import type { Logger } from '../log/index.js';
import { killLocalServersSync } from './child-registry.js';
import { startEtcd, type EtcdProcess } from './etcd-process.js';
import { startNats, type NatsProcess } from './nats-process.js';

export { killLocalServersSync };

/** Options of `startLocalServers`. */
export interface LocalServersOptions {
  /** Receives lifecycle events at debug level. Default: silent. */
  logger?: Logger;
  /** Aborts the start: both servers are stopped and the promise rejects. */
  signal?: AbortSignal;
  /** Time each server has to become healthy. Default: `DEFAULT_START_TIMEOUT_MS` (15 s). */
  startTimeoutMs?: number;
  /** More command-line arguments of etcd (e.g. its compaction). */
  etcdArgs?: readonly string[];
}

/** A running etcd and NATS pair. */
export interface LocalServers {
  readonly etcd: EtcdProcess;
  readonly nats: NatsProcess;
  /** Stops both and removes their temporary data. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts one etcd and one NATS server in parallel. If either fails, the other
 * is stopped before the promise rejects. Both are also killed, and their data
 * removed, when this process exits.
 */
export async function startLocalServers(options: LocalServersOptions = {}): Promise<LocalServers> {
  const { etcdArgs, ...common } = options;
  const etcdOptions = etcdArgs === undefined ? common : { ...common, extraArgs: etcdArgs };
  const [etcd, nats] = await Promise.allSettled([startEtcd(etcdOptions), startNats(common)]);
  if (etcd.status === 'fulfilled' && nats.status === 'fulfilled') {
    const servers = { etcd: etcd.value, nats: nats.value };
    return { ...servers, stop: () => stopAll(servers) };
  }
  if (etcd.status === 'fulfilled') await etcd.value.stop();
  if (nats.status === 'fulfilled') await nats.value.stop();
  throw etcd.status === 'rejected' ? etcd.reason : (nats as PromiseRejectedResult).reason;
}

async function stopAll(servers: { etcd: EtcdProcess; nats: NatsProcess }): Promise<void> {
  await Promise.all([servers.etcd.stop(), servers.nats.stop()]);
}
