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
  /** grpc-js channel options (keepalive, message sizes…). Default: none. */
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

/** Resolves when the channel is connected, or rejects after `deadlineMs`. */
export function waitForReady(client: grpc.Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + deadlineMs, (err) => (err === undefined ? resolve() : reject(err)));
  });
}
