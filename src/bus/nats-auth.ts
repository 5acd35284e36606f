/**
 * How a ckpt component proves who it is to NATS and checks the server:
 * user and password, a token, an NKey seed, a creds file (user JWT and
 * seed), and TLS with a custom CA and a client certificate. Files are read
 * once, when the options are loaded, so that a missing or unusable file
 * fails the start with an error naming the option.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator, type ConnectionOptions } from '@nats-io/nats-core';
import { CkptError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';

/**
 * Credentials and TLS of a NATS connection. Give at most one of `user`,
 * `token`, `nkeySeedFile` and `credsFile`; each secret may be given as a
 * value or as a file holding it. Default: none of them (an open server).
 */
export interface NatsAuthOptions {
  /** User name, with `password` or `passwordFile`. */
  user?: string;
  /** Password of `user`. */
  password?: string | Secret;
  /** File holding the password of `user` (surrounding whitespace is ignored). */
  passwordFile?: string;
  /** Token for a server configured with `authorization { token }`. */
  token?: string | Secret;
  /** File holding the token (surrounding whitespace is ignored). */
  tokenFile?: string;
  /** File holding an NKey user seed (`SU...`). */
  nkeySeedFile?: string;
  /** A `.creds` file: a user JWT and its NKey seed, as `nsc` writes it. */
  credsFile?: string;
  /** PEM file of the CA the server's certificate must chain to; implies TLS. */
  tlsCaFile?: string;
  /** PEM file of the client certificate, with `tlsKeyFile`; implies TLS. */
  tlsCertFile?: string;
  /** PEM file of the client certificate's private key. */
  tlsKeyFile?: string;
  /**
   * Prefix of the connection's reply subjects instead of `_INBOX`: a server
   * that lets each user subscribe only to its own inboxes needs it (see
   * `renderNatsPermissions`). Default `_INBOX`.
   */
  inboxPrefix?: string;
}

/** The part of nats.js's `ConnectionOptions` that `NatsAuthOptions` sets. */
export type NatsConnectAuth = Pick<
  ConnectionOptions,
  'user' | 'pass' | 'token' | 'authenticator' | 'tls' | 'inboxPrefix'
>;

/** Names an option in errors: `natsCredsFile (CKPT_NATS_CREDS_FILE)`, `natsAuth.credsFile`, ... */
export type OptionNamer = (field: keyof NatsAuthOptions) => string;

/**
 * Reads every file `options` names and returns the connection options of
 * nats.js. Throws `CkptError('MALFORMED')` naming the option when options
 * conflict or a file cannot be read or is empty.
 */
export function loadNatsAuth(options: NatsAuthOptions, name: OptionNamer): NatsConnectAuth {
  const read = (field: keyof NatsAuthOptions, path: string): string => readSecretFile(path, name(field));
  const password = secretOf(options, 'password', 'passwordFile', name, read);
  const token = secretOf(options, 'token', 'tokenFile', name, read);
  const methods = [
    options.user !== undefined && 'user',
    token !== undefined && 'token',
    options.nkeySeedFile !== undefined && 'nkeySeedFile',
    options.credsFile !== undefined && 'credsFile',
  ].filter((m): m is keyof NatsAuthOptions => m !== false);
  if (methods.length > 1) throw malformed(`${methods.map(name).join(' and ')} exclude each other; give one`);
  if ((options.user === undefined) !== (password === undefined))
    throw malformed(`${name('user')} and a password (${name('password')} or ${name('passwordFile')}) go together`);
  const auth: NatsConnectAuth = {};
  if (options.user !== undefined && password !== undefined) Object.assign(auth, { user: options.user, pass: password });
  if (token !== undefined) auth.token = token;
  if (options.nkeySeedFile !== undefined) {
    const seed = new TextEncoder().encode(read('nkeySeedFile', options.nkeySeedFile));
    auth.authenticator = nkeyAuthenticator(seed);
  }
  if (options.credsFile !== undefined)
    auth.authenticator = credsAuthenticatorOf(read('credsFile', options.credsFile), name('credsFile'));
  const tls = loadTls(options, name, read);
  if (tls !== undefined) auth.tls = tls;
  if (options.inboxPrefix !== undefined) auth.inboxPrefix = options.inboxPrefix;
  return auth;
}

/**
 * The authenticator of a creds file's text, tried once on a sample nonce so
 * that a file without a user JWT and a usable seed fails here rather than at
 * every connection attempt. The text comes trimmed, and nats.js finds each
 * block by the newline after its closing dashes: the last one gets it back.
 */
function credsAuthenticatorOf(text: string, option: string): Authenticator {
  if (!text.includes('BEGIN NATS USER JWT')) throw malformed(`${option}: not a NATS creds file`);
  const authenticator = credsAuthenticator(new TextEncoder().encode(`${text}\n`));
  try {
    authenticator('nonce');
  } catch (err) {
    // nats.js and nkeys name the problem, never the file's content.
    const why = err instanceof Error ? err.message : String(err);
    throw new CkptError('MALFORMED', `${option}: no usable user JWT and NKey seed in the file (${why})`, {
      cause: err,
    });
  }
  return authenticator;
}

function secretOf(
  options: NatsAuthOptions,
  valueField: 'password' | 'token',
  fileField: 'passwordFile' | 'tokenFile',
  name: OptionNamer,
  read: (field: keyof NatsAuthOptions, path: string) => string,
): string | undefined {
  const value = options[valueField];
  const file = options[fileField];
  if (value !== undefined && file !== undefined)
    throw malformed(`give ${name(valueField)} or ${name(fileField)}, not both`);
  if (file !== undefined) return read(fileField, file);
  if (value === undefined) return undefined;
  const text = typeof value === 'string' ? value : value.reveal();
  if (text === '') throw malformed(`${name(valueField)} must not be empty`);
  return text;
}

function loadTls(
  options: NatsAuthOptions,
  name: OptionNamer,
  read: (field: keyof NatsAuthOptions, path: string) => string,
): NonNullable<ConnectionOptions['tls']> | undefined {
  const { tlsCaFile, tlsCertFile, tlsKeyFile } = options;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined))
    throw malformed(`${name('tlsCertFile')} and ${name('tlsKeyFile')} go together`);
  if (tlsCaFile === undefined && tlsCertFile === undefined) return undefined;
  const tls: NonNullable<ConnectionOptions['tls']> = {};
  if (tlsCaFile !== undefined) tls.ca = pem(read('tlsCaFile', tlsCaFile), name('tlsCaFile'), 'CERTIFICATE');
  if (tlsCertFile !== undefined && tlsKeyFile !== undefined) {
    tls.cert = pem(read('tlsCertFile', tlsCertFile), name('tlsCertFile'), 'CERTIFICATE');
    tls.key = pem(read('tlsKeyFile', tlsKeyFile), name('tlsKeyFile'), 'PRIVATE KEY');
  }
  return tls;
}

/**
 * The trimmed text of a file holding a secret or a PEM block. Throws
 * `CkptError('MALFORMED')` naming `option` when it cannot be read or is
 * empty; the error never quotes the file's content.
 */
export function readSecretFile(path: string, option: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new CkptError('MALFORMED', `${option}: cannot read ${path} (${code})`, { cause: err });
  }
  const trimmed = text.trim();
  if (trimmed === '') throw malformed(`${option}: ${path} is empty`);
  return trimmed;
}

/** `text` when it holds a PEM block of `kind` (`CERTIFICATE`, `PRIVATE KEY`, ...), else MALFORMED naming `option`. */
export function pem(text: string, option: string, kind: string): string {
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text))
    throw malformed(`${option}: no PEM ${kind} in the file`);
  return text;
}

function malformed(message: string): CkptError {
  return new CkptError('MALFORMED', message);
}

/** The environment variables of `natsAuthFromEnv`, by option. */
const NATS_ENV: ReadonlyArray<[keyof NatsAuthOptions, string]> = [
  ['user', 'CKPT_NATS_USER'],
  ['password', 'CKPT_NATS_PASSWORD'],
  ['passwordFile', 'CKPT_NATS_PASSWORD_FILE'],
  ['token', 'CKPT_NATS_TOKEN'],
  ['tokenFile', 'CKPT_NATS_TOKEN_FILE'],
  ['nkeySeedFile', 'CKPT_NATS_NKEY_SEED_FILE'],
  ['credsFile', 'CKPT_NATS_CREDS_FILE'],
  ['tlsCaFile', 'CKPT_NATS_TLS_CA_FILE'],
  ['tlsCertFile', 'CKPT_NATS_TLS_CERT_FILE'],
  ['tlsKeyFile', 'CKPT_NATS_TLS_KEY_FILE'],
  ['inboxPrefix', 'CKPT_NATS_INBOX_PREFIX'],
];

/**
 * NATS credentials and TLS from the environment variables the coordinator
 * reads too (`CKPT_NATS_USER`, `CKPT_NATS_PASSWORD_FILE`, ...; empty ones
 * unset), for processes configured by their environment, such as workers
 * in a container. The files are read by `loadNatsAuth`.
 */
export function natsAuthFromEnv(env: NodeJS.ProcessEnv = process.env): NatsAuthOptions {
  const options: Record<string, string> = {};
  for (const [field, name] of NATS_ENV) {
    const value = env[name];
    if (value !== undefined && value !== '') options[field] = value;
  }
  return options;
}
