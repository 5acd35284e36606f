/**
 * Connection options shared by the ckpt clients.
 */
import * as grpc from '@grpc/grpc-js';
import { bearerTokenInterceptor } from './auth.js';
import type { LeaderRetryOptions } from './leader-routing.js';

/** Options of `createCoordinatorClient` and `createQueryClient`. */
export interface ClientOptions {
  /** Sent as `authorization: Bearer <token>` on every call. Default: none. */
  token?: string;
  /** Channel credentials. Default: insecure (plain TCP). */
  credentials?: grpc.ChannelCredentials;
  /** grpc-js channel options (keepalive, message sizes…). Default: none. */
  channelOptions?: grpc.ChannelOptions;
  /** How calls are retried while the client looks for the leader. Defaults: see `LeaderRetryOptions`. */
  retry?: LeaderRetryOptions;
}

/** The credentials and grpc-js client options for `options`. */
export function grpcClientOptions(options: ClientOptions): {
  credentials: grpc.ChannelCredentials;
  clientOptions: grpc.ClientOptions;
} {
  const clientOptions: grpc.ClientOptions = { ...options.channelOptions };
  if (options.token !== undefined && options.token !== '') {
    clientOptions.interceptors = [bearerTokenInterceptor(options.token)];
  }
  return { credentials: options.credentials ?? grpc.credentials.createInsecure(), clientOptions };
}

/** Resolves when the channel is connected, or rejects after `deadlineMs`. */
export function waitForReady(client: grpc.Client, deadlineMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + deadlineMs, (err) => (err === undefined ? resolve() : reject(err)));
  });
}
