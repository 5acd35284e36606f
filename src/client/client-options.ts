/**
 * Connection options shared by the ckpt clients.
 */
import * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import { bearerTokenInterceptor } from './auth.js';
import { LEADER_CHANNEL_OPTIONS, type LeaderRetryOptions } from './leader-routing.js';
import { clientTls, normaliseTls, type ClientTlsOptions } from './tls.js';

/**
 * Default of `ClientOptions.maxMessageBytes`: 64 MiB, the coordinator's
 * own default (`--max-message-bytes`). grpc-js alone would refuse to
 * receive more than 4 MiB, less than a restore command or a manifest of a
 * large job may take.
 */
export const DEFAULT_CLIENT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * HTTP/2 keepalive of a coordinator client's connections (grpc-js
 * `grpc.keepalive_time_ms` and `grpc.keepalive_timeout_ms`, with
 * `grpc.keepalive_permit_without_calls`): a ping `timeMs` after the last
 * one was answered; a connection whose ping goes `timeoutMs` unanswered is
 * closed, and its calls (a worker's session among them) fail UNAVAILABLE.
 */
export interface KeepaliveOptions {
  /** Time from an answered ping to the next one. Default 1000 ms. */
  timeMs?: number;
  /** How long a ping may go unanswered. Default 4000 ms. */
  timeoutMs?: number;
}

/**
 * Defaults of `KeepaliveOptions`. A coordinator that stopped answering
 * (its process paused, its host frozen, a link that drops packets without
 * a reset) is noticed 4 to 5 s later: about the 5 s election lease, by
 * when a standby has taken over. A coordinator whose event loop stalls for
 * less than 4 s (a long collection, a loaded machine) keeps its clients; one
 * that stalls for the lease TTL has lost its leadership anyway.
 */
export const DEFAULT_KEEPALIVE: Required<KeepaliveOptions> = { timeMs: 1000, timeoutMs: 4000 };

/** Options of `createCoordinatorClient` and `createQueryClient`. */
export interface ClientOptions {
  /** Sent as `authorization: Bearer <token>` on every call. Default: none. */
  token?: string;
  /**
   * TLS: `true` checks the coordinators' certificates against the system
   * CAs; an object names a CA, a client certificate and the server name.
   * Default: plaintext, unless `credentials` are given.
   */
  tls?: boolean | ClientTlsOptions;
  /**
   * Channel credentials, in place of `tls`. A client with them follows a
   * leader only to the addresses it was given. Default: insecure (plain TCP).
   */
  credentials?: grpc.ChannelCredentials;
  /**
   * Largest message the client receives or sends, in bytes (the channel
   * options `grpc.max_receive_message_length` and
   * `grpc.max_send_message_length`). Default
   * `DEFAULT_CLIENT_MAX_MESSAGE_BYTES`; `channelOptions` take precedence.
   */
  maxMessageBytes?: number;
  /**
   * HTTP/2 keepalive; `false` sends no pings (a silent coordinator is then
   * noticed only when the operating system gives up on the connection).
   * Defaults: see `DEFAULT_KEEPALIVE`; `channelOptions` take precedence.
   */
  keepalive?: KeepaliveOptions | false;
  /** grpc-js channel options (message sizes…). Default: none. */
  channelOptions?: grpc.ChannelOptions;
  /** How calls are retried while the client looks for the leader. Defaults: see `LeaderRetryOptions`. */
  retry?: LeaderRetryOptions;
}

/**
 * The credentials and grpc-js client options for `options`, and whether a
 * leader the client was not given may be followed; throws
 * `CkptError('MALFORMED')` for a bad size or TLS file.
 */
export function grpcClientOptions(options: ClientOptions): {
  credentials: grpc.ChannelCredentials;
  clientOptions: grpc.ClientOptions;
  followUnlistedLeaders: boolean;
} {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes <= 0) {
    throw new CkptError('MALFORMED', `maxMessageBytes: ${maxMessageBytes} is not a positive number of bytes`);
  }
  const tlsOptions = normaliseTls(options.tls);
  if (tlsOptions !== undefined && options.credentials !== undefined) {
    throw new CkptError('MALFORMED', 'tls and credentials: give one or the other');
  }
  const tls = tlsOptions === undefined ? undefined : clientTls(tlsOptions);
  const clientOptions: grpc.ClientOptions = {
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
    ...keepaliveChannelOptions(options.keepalive),
    ...LEADER_CHANNEL_OPTIONS,
    ...tls?.channelOptions,
    ...options.channelOptions,
  };
  if (options.token !== undefined && options.token !== '') {
    clientOptions.interceptors = [bearerTokenInterceptor(options.token)];
  }
  return {
    credentials: tls?.credentials ?? options.credentials ?? grpc.credentials.createInsecure(),
    clientOptions,
    followUnlistedLeaders: tls?.followUnlistedLeaders ?? false,
  };
}

/** The grpc-js channel options of `keepalive`; throws `CkptError('MALFORMED')` for a time that is not a positive integer. */
export function keepaliveChannelOptions(keepalive: KeepaliveOptions | false | undefined): grpc.ChannelOptions {
  if (keepalive === false) return {};
  const timeMs = keepalive?.timeMs ?? DEFAULT_KEEPALIVE.timeMs;
  const timeoutMs = keepalive?.timeoutMs ?? DEFAULT_KEEPALIVE.timeoutMs;
  for (const [name, value] of [
    ['keepalive.timeMs', timeMs],
    ['keepalive.timeoutMs', timeoutMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new CkptError('MALFORMED', `${name}: ${value} is not a positive number of milliseconds`);
    }
  }
  return {
    'grpc.keepalive_time_ms': timeMs,
    'grpc.keepalive_timeout_ms': timeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
  };
}

/** Resolves when the channel is connected, or rejects after `deadlineMs`. */
export function waitForReady(client: grpc.Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + deadlineMs, (err) => (err === undefined ? resolve() : reject(err)));
  });
}
