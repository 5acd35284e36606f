/**
 * TLS of the clients: channel credentials from files, the server name the
 * certificate is checked against, and the client options from the
 * environment. Whether a client may follow a leader it was not given
 * depends on it (see `LeaderRouter`): only a certificate valid for one
 * configured name proves that the address named by a standby is a
 * coordinator of the cluster.
 */
import * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import { readCaFile, readIdentity, type TlsFile } from '../core/tls-files.js';

/** TLS of a client's channels. Files are read when the client is created. */
export interface ClientTlsOptions {
  /** PEM CA certificates that signed the coordinators' certificates. Default: the system CAs. */
  caFile?: string;
  /** PEM client certificate, for a coordinator that requires one (mutual TLS). Default: none. */
  certFile?: string;
  /** Private key of `certFile`. Default: none. */
  keyFile?: string;
  /**
   * The name the coordinators' certificates must be valid for, in place of
   * the host of each address: needed for IP addresses, and it lets the
   * client follow a leader it was not given (every coordinator's
   * certificate must then be valid for this name). Default: the host of
   * the address.
   */
  serverName?: string;
}

/** Channel credentials, channel options, and whether leaders not given may be followed. */
export interface ClientTls {
  credentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions;
  followUnlistedLeaders: boolean;
}

/** `ClientOptions.tls` in one shape: undefined for plaintext. */
export function normaliseTls(tls: boolean | ClientTlsOptions | undefined): ClientTlsOptions | undefined {
  if (tls === undefined || tls === false) return undefined;
  if (tls === true) return {};
  if (typeof tls !== 'object' || tls === null) {
    throw new CkptError('MALFORMED', 'tls: must be true, false or an object of TLS options');
  }
  return tls;
}

/** Reads the files of `tls` and builds the channel credentials; errors name the file. */
export function clientTls(tls: ClientTlsOptions): ClientTls {
  const file = (option: keyof ClientTlsOptions, path: string): TlsFile => ({ option: `tls.${option}`, path });
  const ca = tls.caFile === undefined ? null : readCaFile(file('caFile', tls.caFile));
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new CkptError('MALFORMED', 'tls.certFile and tls.keyFile: give both or neither');
  }
  const identity =
    tls.certFile === undefined || tls.keyFile === undefined
      ? undefined
      : readIdentity(file('certFile', tls.certFile), file('keyFile', tls.keyFile));
  const serverName = tls.serverName === '' ? undefined : tls.serverName;
  if (serverName !== undefined && !/^[A-Za-z0-9.*-]{1,253}$/.test(serverName)) {
    throw new CkptError('MALFORMED', `tls.serverName: ${JSON.stringify(serverName)} is not a host name`);
  }
  return {
    credentials: grpc.credentials.createSsl(ca, identity?.key ?? null, identity?.cert ?? null),
    channelOptions: serverName === undefined ? {} : { 'grpc.ssl_target_name_override': serverName },
    followUnlistedLeaders: serverName !== undefined,
  };
}

/**
 * The client TLS options of the environment, shared by the CLI and the
 * worker SDK: `CKPT_TLS` (`true` or `1`: TLS with the system CAs),
 * `CKPT_TLS_CA`, `CKPT_TLS_CLIENT_CERT`, `CKPT_TLS_CLIENT_KEY` and
 * `CKPT_TLS_SERVER_NAME`; any of them turns TLS on. The client's
 * certificate is not `CKPT_TLS_CERT`: that is the coordinator's own.
 */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientTlsOptions | undefined {
  const value = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const options: ClientTlsOptions = {};
  const caFile = value('CKPT_TLS_CA');
  const certFile = value('CKPT_TLS_CLIENT_CERT');
  const keyFile = value('CKPT_TLS_CLIENT_KEY');
  const serverName = value('CKPT_TLS_SERVER_NAME');
  if (caFile !== undefined) options.caFile = caFile;
  if (certFile !== undefined) options.certFile = certFile;
  if (keyFile !== undefined) options.keyFile = keyFile;
  if (serverName !== undefined) options.serverName = serverName;
  const on = value('CKPT_TLS');
  if (Object.keys(options).length > 0 || on === 'true' || on === '1') return options;
  return undefined;
}
