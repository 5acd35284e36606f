/**
 * Clients for the test servers that close themselves when the test ends.
 */
import type { ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** Deadline of every etcd call made through `etcdClient`. */
export const DEFAULT_ETCD_CALL_MS = 5_000;

/** An etcd client for `url` with a deadline on every call, closed in `t.teardown`. */
export function etcdClient(t: ExecutionContext, url: string): Etcd3 {
  const client = new Etcd3({
    hosts: url,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + DEFAULT_ETCD_CALL_MS) }),
  });
  t.teardown(() => client.close());
  return client;
}

/** A NATS connection to `url`, closed in `t.teardown`. */
export async function natsConnection(t: ExecutionContext, url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, name: t.title.slice(0, 64) });
  t.teardown(() => nc.close());
  return nc;
}
