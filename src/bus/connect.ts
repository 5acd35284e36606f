/**
 * Opening a NATS connection the way every ckpt component wants it: wait for
 * the first server, then reconnect forever, and log what happens to the
 * connection.
 */
import { connect } from '@nats-io/transport-node';
import type { NatsConnection, Status } from '@nats-io/nats-core';
import type { Logger } from '../log/index.js';
import type { NatsConnectAuth } from './nats-auth.js';
import { fromNatsError } from './nats-errors.js';

/** Options of `connectNats`. */
export interface ConnectNatsOptions {
  /** Logs connection status changes. Default: none. */
  logger?: Logger;
  /** Delay between reconnect attempts to one server. Default 250 ms. */
  reconnectTimeWaitMs?: number;
  /** Connection attempt timeout. Default 5000 ms. */
  timeoutMs?: number;
  /** Credentials and TLS, as `loadNatsAuth` reads them. Default: none. */
  auth?: NatsConnectAuth;
}

/** Default delay between reconnect attempts. */
export const DEFAULT_RECONNECT_TIME_WAIT_MS = 250;

/**
 * Connects to NATS. Resolves once a server answers (it keeps trying until
 * one does) and reconnects forever afterwards. Rejects with
 * `CkptError('MALFORMED')` for unusable options.
 */
export async function connectNats(
  servers: string[],
  name: string,
  options: ConnectNatsOptions = {},
): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      ...options.auth,
      servers,
      name,
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_TIME_WAIT_MS,
      timeout: options.timeoutMs ?? 5000,
    });
  } catch (err) {
    throw fromNatsError(err, `connect to ${servers.join(',')}`);
  }
  if (options.logger !== undefined) void logStatus(nc, options.logger.child({ component: 'nats', name }));
  return nc;
}

/** Logs status changes until the connection closes. */
async function logStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  try {
    for await (const s of nc.status()) logOne(s, logger);
  } catch (err) {
    logger.debug({ err }, 'status iterator ended');
  }
}

function logOne(s: Status, logger: Logger): void {
  switch (s.type) {
    case 'disconnect':
      logger.warn({ server: s.server }, 'disconnected');
      break;
    case 'reconnect':
      logger.info({ server: s.server }, 'reconnected');
      break;
    case 'error':
      // Also where the server's refusals of a publish or subscription arrive (permissions violations).
      logger.warn({ err: s.error }, 'server error');
      break;
    case 'slowConsumer':
      logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'slow consumer');
      break;
    default:
      logger.trace({ status: s.type }, 'status');
  }
}
