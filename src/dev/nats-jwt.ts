/**
 * NATS JWTs for a nats-server in operator mode (decentralised JWT auth),
 * issued without `nsc`: an operator, one account with JetStream, and one
 * user per role of `rolePermissions`, so that the JWTs grant exactly the
 * subjects the `authorization` block of `renderNatsPermissions` grants.
 * Each user gets a creds file (its JWT and NKey seed) for `--nats-creds-file`
 * or `natsAuth.credsFile`; the server gets a configuration fragment that
 * trusts the operator and preloads the accounts.
 *
 * A JWT is `base64url(header).base64url(claims).base64url(signature)`, the
 * header `{"typ":"JWT","alg":"ed25519-nkey"}` and the signature the issuer's
 * Ed25519 signature of the first two parts: the operator signs itself and
 * the accounts, an account signs its users.
 */
import { createHash } from 'node:crypto';
import { nkeys } from '@nats-io/nats-core';
import { CkptError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { rolePermissions, type NatsJobUser, type NatsPermissions } from './nats-permissions.js';

/** The three kinds of JWT a nats-server in operator mode reads. */
export type NatsJwtKind = 'operator' | 'account' | 'user';

/** The claims of a NATS JWT (version 2), as the server reads them. */
export interface NatsJwtClaims {
  /** Unique id: base32 of the SHA-512/256 of the other claims. The server does not check it. */
  jti: string;
  /** Issued at, seconds since the epoch. */
  iat: number;
  /** The issuer's public key (`O...` for operators, `A...` for accounts). */
  iss: string;
  /** Who is named: the public key of the operator, account or user. */
  sub: string;
  name: string;
  /** What the subject may do, by kind; `type` and `version` (2) in every kind. */
  nats: { type: NatsJwtKind; version: 2 } & Record<string, unknown>;
}

/** A JWT read back by `decodeNatsJwt`. */
export interface DecodedNatsJwt {
  header: { typ: string; alg: string };
  claims: NatsJwtClaims;
}

/** An NKey pair of `@nats-io/nkeys` (operator, account or user). */
export type NatsKeyPair = ReturnType<typeof nkeys.createUser>;

const HEADER = { typ: 'JWT', alg: 'ed25519-nkey' };
/** The value of a limit without a bound. */
const NO_LIMIT = -1;

/**
 * Signs `claims` with `issuer` into a JWT; `iss` is the issuer's public
 * key, `iat` now unless given, `jti` computed.
 */
export function encodeNatsJwt(
  issuer: NatsKeyPair,
  claims: Pick<NatsJwtClaims, 'sub' | 'name' | 'nats'>,
  iat?: number,
): string {
  const body = {
    iat: iat ?? Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name: claims.name,
    sub: claims.sub,
    nats: claims.nats,
  };
  const jti = base32(createHash('sha512-256').update(JSON.stringify(body)).digest());
  const signed = `${base64url(HEADER)}.${base64url({ jti, ...body })}`;
  const signature = Buffer.from(issuer.sign(new TextEncoder().encode(signed))).toString('base64url');
  return `${signed}.${signature}`;
}

/**
 * Reads a JWT and checks that its issuer signed it. Throws
 * `CkptError('MALFORMED')` when it is not a NATS JWT or the signature does
 * not verify; whether the issuer is trusted is the caller's question.
 */
export function decodeNatsJwt(token: string): DecodedNatsJwt {
  const parts = token.split('.');
  if (parts.length !== 3) throw malformed('a JWT has three parts separated by dots');
  const [header, claims, signature] = parts as [string, string, string];
  const decoded = { header: parsePart(header, 'header'), claims: parsePart(claims, 'claims') };
  if (decoded.header['alg'] !== HEADER.alg)
    throw malformed(`algorithm ${String(decoded.header['alg'])} is not ed25519-nkey`);
  const issuer = decoded.claims['iss'];
  if (typeof issuer !== 'string') throw malformed('the claims name no issuer');
  let verified = false;
  try {
    const signed = new TextEncoder().encode(`${header}.${claims}`);
    verified = nkeys.fromPublic(issuer).verify(signed, Buffer.from(signature, 'base64url'));
  } catch (err) {
    throw new CkptError('MALFORMED', `JWT issuer ${issuer} is not a public NKey`, { cause: err });
  }
  if (!verified) throw malformed(`the JWT's signature is not its issuer's (${issuer})`);
  return decoded as unknown as DecodedNatsJwt;
}

/** A self-signed operator JWT; `systemAccount` names the account the server uses for its own traffic. */
export function operatorJwt(operator: NatsKeyPair, name: string, systemAccount?: string): string {
  const nats = {
    ...(systemAccount === undefined ? {} : { system_account: systemAccount }),
    type: 'operator' as const,
    version: 2 as const,
  };
  return encodeNatsJwt(operator, { sub: operator.getPublicKey(), name, nats });
}

/**
 * An account JWT signed by `operator`, without limits on connections,
 * subscriptions, data, imports and exports; with JetStream (no bound on
 * memory, disk, streams and consumers) unless `jetStream` is false.
 */
export function accountJwt(operator: NatsKeyPair, account: string, name: string, jetStream = true): string {
  const limits = {
    subs: NO_LIMIT,
    data: NO_LIMIT,
    payload: NO_LIMIT,
    imports: NO_LIMIT,
    exports: NO_LIMIT,
    wildcards: true,
    conn: NO_LIMIT,
    leaf: NO_LIMIT,
    ...(jetStream ? { mem_storage: NO_LIMIT, disk_storage: NO_LIMIT, streams: NO_LIMIT, consumer: NO_LIMIT } : {}),
  };
  return encodeNatsJwt(operator, { sub: account, name, nats: { limits, type: 'account', version: 2 } });
}

/** A user JWT signed by `account`, allowed and denied what `permissions` says, without other limits. */
export function userJwt(account: NatsKeyPair, user: string, name: string, permissions: NatsPermissions): string {
  const side = ({ allow, deny }: { allow: string[]; deny: string[] }): Record<string, string[]> => ({
    ...(allow.length > 0 ? { allow } : {}),
    ...(deny.length > 0 ? { deny } : {}),
  });
  const nats = {
    pub: side(permissions.publish),
    sub: side(permissions.subscribe),
    subs: NO_LIMIT,
    data: NO_LIMIT,
    payload: NO_LIMIT,
    type: 'user' as const,
    version: 2 as const,
  };
  return encodeNatsJwt(account, { sub: user, name, nats });
}

/** A creds file, as `nsc` writes it: the user's JWT and its NKey seed. Its text is a secret. */
export function renderCredsFile(jwt: string, seed: Uint8Array): Secret {
  return new Secret(
    [
      '-----BEGIN NATS USER JWT-----',
      jwt,
      '------END NATS USER JWT------',
      '',
      '************************* IMPORTANT *************************',
      'NKEY Seed printed below can be used to sign and prove identity.',
      'NKEYs are sensitive and should be treated as secrets.',
      '',
      '-----BEGIN USER NKEY SEED-----',
      new TextDecoder().decode(seed),
      '------END USER NKEY SEED------',
      '',
    ].join('\n'),
  );
}

/** What `renderOperatorConfig` trusts. */
export interface NatsOperatorConfig {
  /** The operator's JWT. */
  operator: string;
  /** The public key of the system account, which must be among `accounts`. Default: none. */
  systemAccount?: string;
  /** Account JWTs by account public key, all signed by the operator. */
  accounts: Readonly<Record<string, string>>;
}

/**
 * The nats-server configuration fragment of operator mode: the trusted
 * operator, the system account, and a memory resolver preloaded with the
 * accounts. It holds JWTs only, no seed.
 */
export function renderOperatorConfig(config: NatsOperatorConfig): string {
  const preload = Object.entries(config.accounts).map(([account, jwt]) => `  ${quote(account)}: ${quote(jwt)}`);
  return [
    `operator: ${quote(config.operator)}`,
    ...(config.systemAccount === undefined ? [] : [`system_account: ${quote(config.systemAccount)}`]),
    'resolver: MEMORY',
    'resolver_preload: {',
    ...preload,
    '}',
    '',
  ].join('\n');
}

/** The jobs whose worker gets a user, as in `NatsPermissionsPlan` but without credentials: the JWTs are them. */
export interface NatsJwtPlan {
  /** The coordinator's `subjectPrefix`. */
  subjectPrefix: string;
  /** One worker user per job. */
  jobs: readonly Omit<NatsJobUser, 'credentials'>[];
}

/** What `issueNatsJwts` made: the server's configuration and a creds file per user. */
export interface NatsJwtDeployment {
  /** The operator's public key. */
  operator: string;
  /** The public key of the account every ckpt user belongs to. */
  account: string;
  /** The nats-server configuration fragment (`renderOperatorConfig`). */
  serverConfig: string;
  /** The coordinator's creds file. */
  coordinatorCreds: Secret;
  /** The creds file of each job's worker, by job id. */
  workerCreds: ReadonlyMap<string, Secret>;
}

/**
 * A fresh operator, a system account, a ckpt account with JetStream, and a
 * user for the coordinator and for each job's worker with the permissions
 * of `rolePermissions`. The system account is not optional: in operator
 * mode nats-server (2.9) does not start JetStream without one ("system
 * account not setup"). The operator's and the accounts' seeds are
 * dropped once they signed, so nobody can issue another user this server
 * trusts; the only secrets returned are the users' seeds in their creds files.
 */
export function issueNatsJwts(plan: NatsJwtPlan): NatsJwtDeployment {
  const roles = rolePermissions(plan.subjectPrefix, plan.jobs);
  const operatorKeys = nkeys.createOperator();
  const operator = operatorKeys.getPublicKey();
  const system = nkeys.createAccount().getPublicKey();
  const accountKeys = nkeys.createAccount();
  const account = accountKeys.getPublicKey();
  const serverConfig = renderOperatorConfig({
    operator: operatorJwt(operatorKeys, 'ckpt', system),
    systemAccount: system,
    accounts: {
      [system]: accountJwt(operatorKeys, system, 'SYS', false),
      [account]: accountJwt(operatorKeys, account, 'ckpt'),
    },
  });
  operatorKeys.clear();
  const creds = roles.map(({ role, permissions }) => {
    const user = nkeys.createUser();
    const file = renderCredsFile(userJwt(accountKeys, user.getPublicKey(), role, permissions), user.getSeed());
    user.clear();
    return file;
  });
  accountKeys.clear();
  const [coordinatorCreds, ...workers] = creds as [Secret, ...Secret[]];
  const workerCreds = new Map(roles.slice(1).map(({ jobId }, i) => [jobId as string, workers[i] as Secret]));
  return { operator, account, serverConfig, coordinatorCreds, workerCreds };
}

function parsePart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (err) {
    throw new CkptError('MALFORMED', `the JWT's ${what} is not base64url JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw malformed(`the JWT's ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding, as the NATS tools write a `jti`. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32[(value >>> bits) & 31];
      value &= (1 << bits) - 1;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** A double-quoted string of the nats-server configuration format. */
function quote(value: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(value)) throw malformed(`${JSON.stringify(value)} is not a key or a JWT`);
  return `"${value}"`;
}

function malformed(message: string): CkptError {
  return new CkptError('MALFORMED', message);
}
