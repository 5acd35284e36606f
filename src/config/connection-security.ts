/**
 * The coordinator's options for authenticating to NATS and etcd and for
 * checking their TLS certificates, and how they become the options of the
 * two clients. A secret (password, token) comes from its environment
 * variable, from a file, or from code, never from a command-line flag, and
 * is held as a `Secret` so that no log shows it. Files are read by
 * `natsAuthOf` and `etcdSecurityOf`, at the start of the coordinator.
 */
import type { IOptions } from 'etcd3';
import { loadNatsAuth, pem, readSecretFile, type NatsAuthOptions, type NatsConnectAuth } from '../bus/index.js';
import { CkptError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { envName } from './env-name.js';

/** Credentials and TLS of the coordinator's NATS and etcd connections. Every option defaults to unset. */
export interface ConnectionSecurityConfig {
  /** NATS user name, with `natsPassword` or `natsPasswordFile`. @default undefined */
  natsUser: string | undefined;
  /** Password of `natsUser`; from `CKPT_NATS_PASSWORD` or code, never a flag. @default undefined */
  natsPassword: Secret | undefined;
  /** File holding the password of `natsUser`. @default undefined */
  natsPasswordFile: string | undefined;
  /** NATS token; from `CKPT_NATS_TOKEN` or code, never a flag. @default undefined */
  natsToken: Secret | undefined;
  /** File holding the NATS token. @default undefined */
  natsTokenFile: string | undefined;
  /** File holding the NKey seed of the coordinator's NATS user. @default undefined */
  natsNkeySeedFile: string | undefined;
  /** NATS creds file (user JWT and seed). @default undefined */
  natsCredsFile: string | undefined;
  /** PEM CA file the NATS server's certificate must chain to; implies TLS. @default undefined */
  natsTlsCaFile: string | undefined;
  /** PEM client certificate for NATS, with `natsTlsKeyFile`. @default undefined */
  natsTlsCertFile: string | undefined;
  /** PEM private key of `natsTlsCertFile`. @default undefined */
  natsTlsKeyFile: string | undefined;
  /** etcd user name, with `etcdPassword` or `etcdPasswordFile`. @default undefined */
  etcdUser: string | undefined;
  /** Password of `etcdUser`; from `CKPT_ETCD_PASSWORD` or code, never a flag. @default undefined */
  etcdPassword: Secret | undefined;
  /** File holding the password of `etcdUser`. @default undefined */
  etcdPasswordFile: string | undefined;
  /** PEM CA file etcd's certificate must chain to; needs https:// etcd URLs. @default undefined */
  etcdTlsCaFile: string | undefined;
  /** PEM client certificate for etcd, with `etcdTlsKeyFile` and `etcdTlsCaFile`. @default undefined */
  etcdTlsCertFile: string | undefined;
  /** PEM private key of `etcdTlsCertFile`. @default undefined */
  etcdTlsKeyFile: string | undefined;
}

/** The defaults: no credentials, no TLS. */
export const DEFAULT_CONNECTION_SECURITY: Readonly<ConnectionSecurityConfig> = Object.freeze({
  natsUser: undefined,
  natsPassword: undefined,
  natsPasswordFile: undefined,
  natsToken: undefined,
  natsTokenFile: undefined,
  natsNkeySeedFile: undefined,
  natsCredsFile: undefined,
  natsTlsCaFile: undefined,
  natsTlsCertFile: undefined,
  natsTlsKeyFile: undefined,
  etcdUser: undefined,
  etcdPassword: undefined,
  etcdPasswordFile: undefined,
  etcdTlsCaFile: undefined,
  etcdTlsCertFile: undefined,
  etcdTlsKeyFile: undefined,
});

const SECRETS = ['natsPassword', 'natsToken', 'etcdPassword'] as const;

/** `option (CKPT_OPTION)`, as errors name an option. */
function named(option: string): string {
  return `option ${option} (${envName(option)})`;
}

/**
 * The options from `pick` (input over environment over defaults): strings,
 * empty ones unset, secrets wrapped. Throws MALFORMED naming the option for
 * a value that is neither a string nor (for a secret) a `Secret`.
 */
export function resolveConnectionSecurity(
  pick: (option: keyof ConnectionSecurityConfig) => unknown,
): ConnectionSecurityConfig {
  const resolved: Record<string, string | Secret | undefined> = {};
  for (const option of Object.keys(DEFAULT_CONNECTION_SECURITY) as Array<keyof ConnectionSecurityConfig>) {
    const value = pick(option);
    const secret = (SECRETS as readonly string[]).includes(option);
    if (value === undefined || value === null || value === '') resolved[option] = undefined;
    else if (secret && value instanceof Secret) resolved[option] = value;
    else if (typeof value !== 'string') throw new CkptError('MALFORMED', `${named(option)} must be a string`);
    else resolved[option] = secret ? new Secret(value) : value;
  }
  return resolved as unknown as ConnectionSecurityConfig;
}

/** Reads the NATS credential and TLS files; throws MALFORMED naming the option. */
export function natsAuthOf(c: ConnectionSecurityConfig): NatsConnectAuth {
  const options: NatsAuthOptions = {
    user: c.natsUser,
    password: c.natsPassword,
    passwordFile: c.natsPasswordFile,
    token: c.natsToken,
    tokenFile: c.natsTokenFile,
    nkeySeedFile: c.natsNkeySeedFile,
    credsFile: c.natsCredsFile,
    tlsCaFile: c.natsTlsCaFile,
    tlsCertFile: c.natsTlsCertFile,
    tlsKeyFile: c.natsTlsKeyFile,
  };
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as NatsAuthOptions;
  return loadNatsAuth(given, (field) => {
    const option = `nats${field.charAt(0).toUpperCase()}${field.slice(1)}`;
    return named(option).replace(/^option /, '');
  });
}

/** The `credentials` and `auth` of an etcd3 client. */
export type EtcdSecurity = Pick<IOptions, 'credentials' | 'auth'>;

/**
 * Reads the etcd credential and TLS files and checks them against the etcd
 * URLs; throws MALFORMED naming the option.
 */
export function etcdSecurityOf(c: ConnectionSecurityConfig, urls: readonly string[]): EtcdSecurity {
  const name = (option: string): string => named(option).replace(/^option /, '');
  const security: EtcdSecurity = {};
  if (c.etcdPassword !== undefined && c.etcdPasswordFile !== undefined)
    throw new CkptError('MALFORMED', `give ${name('etcdPassword')} or ${name('etcdPasswordFile')}, not both`);
  const password =
    c.etcdPasswordFile !== undefined
      ? readSecretFile(c.etcdPasswordFile, name('etcdPasswordFile'))
      : c.etcdPassword?.reveal();
  if ((c.etcdUser === undefined) !== (password === undefined))
    throw new CkptError(
      'MALFORMED',
      `${name('etcdUser')} and a password (${name('etcdPassword')} or a file) go together`,
    );
  if (c.etcdUser !== undefined && password !== undefined) security.auth = { username: c.etcdUser, password };
  if ((c.etcdTlsCertFile === undefined) !== (c.etcdTlsKeyFile === undefined))
    throw new CkptError('MALFORMED', `${name('etcdTlsCertFile')} and ${name('etcdTlsKeyFile')} go together`);
  if (c.etcdTlsCaFile === undefined) {
    if (c.etcdTlsCertFile !== undefined)
      throw new CkptError('MALFORMED', `${name('etcdTlsCertFile')} needs ${name('etcdTlsCaFile')}`);
    return security;
  }
  const plain = urls.find((url) => !url.startsWith('https://'));
  if (plain !== undefined)
    throw new CkptError('MALFORMED', `${name('etcdTlsCaFile')} needs https:// etcd URLs, got ${plain}`);
  const file = (option: string, path: string, kind: string): Buffer =>
    Buffer.from(pem(readSecretFile(path, name(option)), name(option), kind));
  security.credentials = { rootCertificate: file('etcdTlsCaFile', c.etcdTlsCaFile, 'CERTIFICATE') };
  if (c.etcdTlsCertFile !== undefined && c.etcdTlsKeyFile !== undefined) {
    security.credentials.certChain = file('etcdTlsCertFile', c.etcdTlsCertFile, 'CERTIFICATE');
    security.credentials.privateKey = file('etcdTlsKeyFile', c.etcdTlsKeyFile, 'PRIVATE KEY');
  }
  return security;
}
