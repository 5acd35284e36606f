/**
 * Opening a NATS connection the way every ckpt component wants it: wait for
 * the first server, then reconnect forever, and log what happens to the
 * connection.
 */
import { connect } from '@nats-io/transport-node';
import type { ConnectionOptions, NatsConnection, Status } from '@nats-io/nats-core';
import type { Logger } from '../log/index.js';
import type { NatsConnectAuth } from './nats-auth.js';
import { CkptError } from '../core/errors.js';
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
 *
 * A first attempt goes once over the servers, without waiting. A
 * certificate that the CA does not vouch for ends the start there, as
 * every later attempt would fail alike and the waiting connect would retry
 * it forever without a word; so does a server that requires TLS when the
 * client was given no CA (nats.js then checks the certificate against the
 * system CAs, which fails alike). Any other failure (no server answers
 * yet) is left to a connect that waits for the first server. With a single
 * server the first attempt, when it succeeds, is the connection: a start
 * (a restarted worker's too) then opens one connection, not two. With more
 * it is closed, because nats.js drops from its list the servers that a
 * first attempt without waiting could not reach, and the connection must
 * keep them all to reconnect to.
 */
export async function connectNats(
  servers: string[],
  name: string,
  options: ConnectNatsOptions = {},
): Promise<NatsConnection> {
  const connectOptions = {
    ...options.auth,
    servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_TIME_WAIT_MS,
    timeout: options.timeoutMs ?? 5000,
  };
  let nc = await firstAttempt(servers, connectOptions);
  if (nc === undefined) {
    try {
      nc = await connect({ ...connectOptions, waitOnFirstConnect: true });
    } catch (err) {
      throw fromNatsError(err, `connect to ${servers.join(',')}`);
    }
  }
  if (options.logger !== undefined) void logStatus(nc, options.logger.child({ component: 'nats', name }));
  return nc;
}

/**
 * One pass over `servers` (see `connectNats`): the connection when there is
 * a single server and it answered; undefined when the waiting connect is to
 * follow; throws UNAVAILABLE on a certificate problem.
 */
async function firstAttempt(
  servers: string[],
  options: ConnectionOptions & { maxReconnectAttempts: number },
): Promise<NatsConnection | undefined> {
  const single = servers.length === 1;
  try {
    const nc = await connect(single ? options : { ...options, maxReconnectAttempts: 0 });
    if (single) return nc;
    await nc.close();
  } catch (err) {
    const reason = certificateProblem(err);
    if (reason !== undefined)
      throw new CkptError('UNAVAILABLE', `connect to ${servers.join(',')}: TLS: ${reason}`, {
        cause: err,
        retryable: false,
      });
  }
  return undefined;
}

/** The message of a TLS certificate check that failed, found in `err` or its causes. */
function certificateProblem(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (/CERT|SIGNATURE|SELF_SIGNED|ALTNAME|ISSUER/.test(code) || /certificate/i.test(e.message)) return e.message;
  }
  return undefined;
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
