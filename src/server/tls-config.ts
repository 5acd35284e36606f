/**
 * The TLS of a coordinator from its config: the files its gRPC server
 * serves with, and the client side it reaches the leader with (a standby
 * forwards the dashboard's queries).
 *
 * The client side, unless the `peerTls*` options say otherwise: only when
 * the server itself serves TLS; the CA is `tlsClientCa` when set (one
 * cluster CA signs coordinators and clients alike), else the system CAs;
 * under mutual TLS the coordinator presents its own certificate, which
 * must then also be valid for client authentication.
 */
import * as grpc from '@grpc/grpc-js';
import type { ClientOptions } from '../client/index.js';
import { clientTls, normaliseTls } from '../client/tls.js';
import type { CoordinatorConfig } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { serverTlsCredentials, type ServerTlsFiles } from './tls-credentials.js';

/**
 * The gRPC server's credentials, plaintext or TLS, after reading and
 * checking every TLS file of `config` (also the peer files): throws
 * `CkptError('MALFORMED')` naming a bad file, before anything connects.
 */
export function serverCredentials(
  config: CoordinatorConfig,
  logger: Logger,
): { credentials: grpc.ServerCredentials; tls: 'off' | 'on' | 'mutual' } {
  const files = serverTlsFiles(config);
  if (files === undefined) return { credentials: grpc.ServerCredentials.createInsecure(), tls: 'off' };
  const credentials = serverTlsCredentials(files, logger.child({ component: 'grpc' }));
  const peer = normaliseTls(peerClientOptions(config).tls);
  if (peer !== undefined) clientTls(peer);
  return { credentials, tls: files.clientCa === undefined ? 'on' : 'mutual' };
}

/** The server's TLS files, or undefined for plaintext. */
export function serverTlsFiles(config: CoordinatorConfig): ServerTlsFiles | undefined {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return undefined;
  return {
    cert: { option: '--tls-cert (CKPT_TLS_CERT)', path: config.tlsCert },
    key: { option: '--tls-key (CKPT_TLS_KEY)', path: config.tlsKey },
    clientCa:
      config.tlsClientCa === undefined
        ? undefined
        : { option: '--tls-client-ca (CKPT_TLS_CLIENT_CA)', path: config.tlsClientCa },
    reloadIntervalMs: config.tlsReloadIntervalMs,
  };
}

/** The options of this coordinator's clients of the leader: its token and TLS. */
export function peerClientOptions(config: CoordinatorConfig): ClientOptions {
  const options: ClientOptions = config.authToken === undefined ? {} : { token: config.authToken };
  if (config.tlsCert === undefined) return options;
  const mutual = config.tlsClientCa !== undefined;
  const caFile = config.peerTlsCa ?? config.tlsClientCa;
  const certFile = config.peerTlsCert ?? (mutual ? config.tlsCert : undefined);
  const keyFile = config.peerTlsKey ?? (mutual ? config.tlsKey : undefined);
  options.tls = {
    ...(caFile === undefined ? {} : { caFile }),
    ...(certFile === undefined || keyFile === undefined ? {} : { certFile, keyFile }),
    ...(config.peerTlsServerName === undefined ? {} : { serverName: config.peerTlsServerName }),
  };
  return options;
}
