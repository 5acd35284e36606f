/**
 * A production-like local topology on loopback: TLS with client
 * certificates and a user on every link, and least privilege everywhere.
 *
 * - A throwaway PKI: a CA; server certificates for the etcd members, the
 *   NATS servers and each coordinator (valid for 127.0.0.1 and localhost,
 *   and as client certificates); client certificates for each job's workers
 *   (`worker-<job>`), an operator (`ckpt-operator`), a reader
 *   (`ckpt-reader`), each stream client (`<name>`) and etcd's administrator;
 *   the reader's and operator's also as PKCS#12 bundles for a browser.
 * - etcd: a cluster serving clients and peers over TLS only, requiring
 *   certificates of the CA, with authentication on: root, and the
 *   coordinators' user whose role may read and write the ckpt prefix only.
 *   Its auth tokens are JWTs, which every member checks alike and which
 *   outlive a member's restart; etcd's default `simple` tokens live in the
 *   memory of the member, and a client whose watch carries one that a
 *   restarted member forgot keeps being refused until a unary call happens
 *   to log in again (the election then went unobserved for half a minute).
 * - NATS: a JetStream cluster whose clients must speak TLS and present a
 *   certificate of the CA (`verify`: a password alone does not let anyone
 *   in), with the users of `renderNatsPermissions`: the coordinators, one
 *   worker user per job, and the stream clients.
 * - An access policy for the coordinators' gRPC API (`--access-policy`):
 *   each job's workers may act as workers of their job, the operator as
 *   operator, the reader and the coordinators themselves (a standby forwards
 *   dashboard queries to the leader) as readers; all by client certificate.
 *
 * Passwords are random, in files readable by their owner only. Everything
 * lives in one temporary directory, removed by `stop()` (or when the
 * process exits).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IOptions } from 'etcd3';
import { readFileSync } from 'node:fs';
import type { NatsAuthOptions } from '../bus/index.js';
import type { ClientTlsOptions } from '../client/index.js';
import type { Logger } from '../log/index.js';
import { trackTempDir, untrackTempDir } from './child-registry.js';
import { enableEtcdAuth } from './etcd-auth.js';
import { startEtcdCluster, type EtcdCluster } from './etcd-process.js';
import {
  clientInboxPrefix,
  renderNatsPermissions,
  workerInboxPrefix,
  type NatsStreamAccess,
} from './nats-permissions.js';
import { startNats, startNatsCluster, type NatsCluster, type NatsClusterOptions } from './nats-process.js';
import { createLocalCa, createRsaKey, exportPkcs12, type CertFiles, type LocalCa } from './pki.js';

/** Default of `SecureClusterOptions.etcdPrefix`. */
export const DEFAULT_SECURE_ETCD_PREFIX = '/ckpt/';
/** Default of `SecureClusterOptions.subjectPrefix`. */
export const DEFAULT_SECURE_SUBJECT_PREFIX = 'ckpt';
/** The etcd user of the coordinators. */
export const COORDINATOR_ETCD_USER = 'ckpt';
/** The NATS user of the coordinators. */
export const COORDINATOR_NATS_USER = 'coordinator';
/** Common names of the certificates the access policy names. */
export const COMMON_NAMES = {
  coordinator: 'ckpt-coordinator',
  operator: 'ckpt-operator',
  reader: 'ckpt-reader',
  etcdAdmin: 'ckpt-etcd-admin',
} as const;

/** The password of the reader's and the operator's PKCS#12 bundles (`pki/reader.p12`, `pki/operator.p12`). */
export const PKCS12_PASSWORD = 'ckpt';

/** The common name of the client certificate of job `jobId`'s workers. */
export function workerCommonName(jobId: string): string {
  return `worker-${jobId}`;
}

/** A job whose workers get a certificate, a NATS user and the worker role on it. */
export interface SecureJob {
  jobId: string;
  /** The application streams its tasks read and write (`NatsJobUser.streams`). Default: none. */
  streams?: readonly NatsStreamAccess[];
}

/** Options of `startSecureCluster`. */
export interface SecureClusterOptions {
  jobs: readonly SecureJob[];
  /** Users that feed or read the jobs' streams (`NatsPermissionsPlan.clients`). Default: none. */
  clients?: ReadonlyArray<{ name: string; streams: readonly NatsStreamAccess[] }>;
  /** Coordinators to issue certificates for. Default 2. */
  coordinators?: number;
  /** etcd members. Default 3. */
  etcdMembers?: number;
  /** NATS servers: 1, or a JetStream cluster of 3 or more. Default 3. */
  natsServers?: number;
  /** The coordinators' etcd prefix, the only keys their user may touch. Default `/ckpt/`. */
  etcdPrefix?: string;
  /** The coordinators' NATS subject prefix. Default `ckpt`. */
  subjectPrefix?: string;
  /** More flags for every nats-server. Default: none. */
  natsExtraArgs?: readonly string[];
  /** Receives the servers' lifecycle events at debug level. Default: silent. */
  logger?: Logger;
  /** Aborts the start; what was started is stopped. */
  signal?: AbortSignal;
}

/** One holder of a client certificate. */
export interface ClusterIdentity extends CertFiles {
  commonName: string;
}

/** A running secure cluster. */
export interface SecureCluster {
  /** The temporary directory: certificates under `pki/`, passwords under `secrets/`, the policy and NATS config. */
  readonly dir: string;
  /** The CA every certificate chains to. */
  readonly caFile: string;
  readonly etcd: EtcdCluster;
  readonly nats: NatsCluster;
  readonly etcdPrefix: string;
  readonly subjectPrefix: string;
  /** The coordinators' access policy (JSON). */
  readonly accessPolicyFile: string;
  readonly operator: ClusterIdentity;
  readonly reader: ClusterIdentity;
  /**
   * Flags of `ckpt coordinator` number `index` for etcd and NATS
   * credentials and TLS, gRPC TLS with client certificates, and with
   * `accessPolicy` the policy; not the server URLs, which the caller
   * chooses (they may go through proxies).
   */
  coordinatorFlags(index: number, options?: { accessPolicy?: boolean }): string[];
  /** gRPC TLS of an identity: the CA and its client certificate. */
  grpcTls(identity: ClusterIdentity): ClientTlsOptions;
  /** The gRPC client certificate of job `jobId`'s workers. */
  worker(jobId: string): ClusterIdentity;
  /** The NATS credentials and TLS of job `jobId`'s workers. */
  workerNatsAuth(jobId: string): NatsAuthOptions;
  /** The NATS credentials and TLS of stream client `name`. */
  clientNatsAuth(name: string): NatsAuthOptions;
  /** `credentials` and `auth` of an etcd3 client acting as etcd's root, for checks from outside. */
  etcdRootSecurity(): Pick<IOptions, 'credentials' | 'auth'>;
  /** Stops every server and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

/** Starts the topology described in the module comment; on failure stops what was started. */
export async function startSecureCluster(options: SecureClusterOptions): Promise<SecureCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-cluster-'));
  trackTempDir(dir);
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    untrackTempDir(dir);
  };
  try {
    return await build(dir, options, stops, stop);
  } catch (err) {
    await stop();
    throw err;
  }
}

interface Secrets {
  etcdRoot: string;
  etcdCoordinator: string;
  nats: Map<string, string>;
}

async function build(
  dir: string,
  options: SecureClusterOptions,
  stops: Array<() => Promise<void>>,
  stop: () => Promise<void>,
): Promise<SecureCluster> {
  const etcdPrefix = options.etcdPrefix ?? DEFAULT_SECURE_ETCD_PREFIX;
  const subjectPrefix = options.subjectPrefix ?? DEFAULT_SECURE_SUBJECT_PREFIX;
  const coordinators = options.coordinators ?? 2;
  const clients = options.clients ?? [];
  await Promise.all(['pki', 'secrets', 'nats'].map((d) => mkdir(join(dir, d), { mode: 0o700 })));
  const ca = await createLocalCa(join(dir, 'pki'), 'ckpt-local-ca');
  const issued = await issueAll(ca, options.jobs, clients, coordinators);
  const secrets: Secrets = { etcdRoot: password(), etcdCoordinator: password(), nats: new Map() };
  const secretFile = async (name: string, value: string): Promise<string> => {
    const file = join(dir, 'secrets', `${name}.password`);
    await writeFile(file, value + '\n', { mode: 0o600 });
    return file;
  };
  const natsUsers = [COORDINATOR_NATS_USER, ...options.jobs.map((j) => workerCommonName(j.jobId)), ...clients.map((c) => c.name)]; // prettier-ignore
  const natsPasswordFiles = new Map<string, string>();
  for (const user of natsUsers) {
    secrets.nats.set(user, password());
    natsPasswordFiles.set(user, await secretFile(`nats-${user}`, secrets.nats.get(user) as string));
  }
  const etcdPasswordFile = await secretFile(`etcd-${COORDINATOR_ETCD_USER}`, secrets.etcdCoordinator);
  const credentials = (user: string): { user: string; password: string } => ({ user, password: secrets.nats.get(user) as string }); // prettier-ignore
  const natsConfig = join(dir, 'nats', 'nats.conf');
  await writeFile(
    natsConfig,
    renderNatsPermissions({
      subjectPrefix,
      coordinator: credentials(COORDINATOR_NATS_USER),
      jobs: options.jobs.map((j) => ({ jobId: j.jobId, credentials: credentials(workerCommonName(j.jobId)), streams: j.streams ?? [] })), // prettier-ignore
      clients: clients.map((c) => ({ name: c.name, credentials: credentials(c.name), streams: c.streams })),
    }) + natsTlsBlock(ca.cert, issued.nats),
    { mode: 0o600 },
  );
  const common = { ...(options.logger ? { logger: options.logger } : {}), ...(options.signal ? { signal: options.signal } : {}) }; // prettier-ignore
  const [etcd, nats] = await Promise.all([
    startEtcdCluster(options.etcdMembers ?? 3, {
      ...common,
      tls: { certFile: issued.etcd.cert, keyFile: issued.etcd.key, caFile: ca.cert },
      extraArgs: ['--auth-token', await jwtTokenOption(ca)],
    }).then((e) => (stops.push(() => e.stop()), e)),
    startNatsServers(options.natsServers ?? 3, {
      ...common,
      extraArgs: ['-c', natsConfig, ...(options.natsExtraArgs ?? [])],
    }).then((n) => (stops.push(() => n.stop()), n)),
  ]);
  const admin = issued.etcdAdmin;
  const target = { endpoints: etcd.clientUrls, caFile: ca.cert, certFile: admin.cert, keyFile: admin.key };
  await enableEtcdAuth(target, {
    rootPassword: secrets.etcdRoot,
    user: COORDINATOR_ETCD_USER,
    password: secrets.etcdCoordinator,
    prefix: etcdPrefix,
  });
  const accessPolicyFile = join(dir, 'access-policy.json');
  await writeFile(accessPolicyFile, JSON.stringify(accessPolicy(options.jobs), null, 2) + '\n');
  const tlsOf = (identity: CertFiles): ClientTlsOptions => ({ caFile: ca.cert, certFile: identity.cert, keyFile: identity.key }); // prettier-ignore
  const natsAuthOf = (user: string, identity: CertFiles, inboxPrefix: string): NatsAuthOptions => ({
    user,
    passwordFile: natsPasswordFiles.get(user),
    tlsCaFile: ca.cert,
    tlsCertFile: identity.cert,
    tlsKeyFile: identity.key,
    inboxPrefix,
  });
  return {
    dir,
    caFile: ca.cert,
    etcd,
    nats,
    etcdPrefix,
    subjectPrefix,
    accessPolicyFile,
    operator: issued.operator,
    reader: issued.reader,
    coordinatorFlags(index, flagOptions = {}) {
      const own = required(issued.coordinators[index], `coordinator ${index}`, `${coordinators} were issued`);
      return [
        ['--etcd-user', COORDINATOR_ETCD_USER, '--etcd-password-file', etcdPasswordFile],
        ['--etcd-tls-ca-file', ca.cert, '--etcd-tls-cert-file', own.cert, '--etcd-tls-key-file', own.key],
        ['--nats-user', COORDINATOR_NATS_USER, '--nats-password-file', natsPasswordFiles.get(COORDINATOR_NATS_USER) as string], // prettier-ignore
        ['--nats-tls-ca-file', ca.cert, '--nats-tls-cert-file', own.cert, '--nats-tls-key-file', own.key],
        ['--tls-cert', own.cert, '--tls-key', own.key, '--tls-client-ca', ca.cert],
        ['--etcd-prefix', etcdPrefix, '--subject-prefix', subjectPrefix],
        flagOptions.accessPolicy === true ? ['--access-policy', accessPolicyFile] : [],
      ].flat();
    },
    grpcTls: tlsOf,
    worker: (jobId) => required(issued.workers.get(jobId), `job ${jobId}`, 'it is not one of the jobs'),
    workerNatsAuth(jobId) {
      const identity = required(issued.workers.get(jobId), `job ${jobId}`, 'it is not one of the jobs');
      return natsAuthOf(workerCommonName(jobId), identity, workerInboxPrefix(jobId));
    },
    clientNatsAuth(name) {
      const identity = required(issued.clients.get(name), `stream client ${name}`, 'it is not one of the clients');
      return natsAuthOf(name, identity, clientInboxPrefix(name));
    },
    etcdRootSecurity: () => ({
      auth: { username: 'root', password: secrets.etcdRoot },
      credentials: {
        rootCertificate: readFileSync(ca.cert),
        certChain: readFileSync(admin.cert),
        privateKey: readFileSync(admin.key),
      },
    }),
    stop,
  };
}

/** A NATS cluster, or one server (which takes no cluster flags) seen as a cluster of one. */
async function startNatsServers(size: number, options: NatsClusterOptions): Promise<NatsCluster> {
  if (size !== 1) return startNatsCluster(size, options);
  const server = await startNats(options);
  return { servers: [server], urls: [server.url], stop: () => server.stop() };
}

interface Issued {
  etcd: CertFiles;
  nats: CertFiles;
  etcdAdmin: CertFiles;
  coordinators: ClusterIdentity[];
  operator: ClusterIdentity;
  reader: ClusterIdentity;
  workers: Map<string, ClusterIdentity>;
  clients: Map<string, ClusterIdentity>;
}

async function issueAll(
  ca: LocalCa,
  jobs: readonly SecureJob[],
  clients: ReadonlyArray<{ name: string }>,
  coordinators: number,
): Promise<Issued> {
  const client = async (file: string, commonName: string): Promise<ClusterIdentity> => ({
    ...(await ca.issue(file, commonName, 'client')),
    commonName,
  });
  const issued: Issued = {
    etcd: await ca.issue('etcd', 'ckpt-etcd', 'server'),
    nats: await ca.issue('nats', 'ckpt-nats', 'server'),
    etcdAdmin: await client('etcd-admin', COMMON_NAMES.etcdAdmin),
    coordinators: [],
    operator: await client('operator', COMMON_NAMES.operator),
    reader: await client('reader', COMMON_NAMES.reader),
    workers: new Map(),
    clients: new Map(),
  };
  // Browsers take client certificates as PKCS#12 bundles; the password is no secret, the directory is private.
  await exportPkcs12(issued.reader, ca.cert, join(ca.dir, 'reader.p12'), PKCS12_PASSWORD);
  await exportPkcs12(issued.operator, ca.cert, join(ca.dir, 'operator.p12'), PKCS12_PASSWORD);
  for (let i = 0; i < coordinators; i++) {
    const files = await ca.issue(`coordinator-${i}`, COMMON_NAMES.coordinator, 'server');
    issued.coordinators.push({ ...files, commonName: COMMON_NAMES.coordinator });
  }
  for (const { jobId } of jobs) issued.workers.set(jobId, await client(`worker-${jobId}`, workerCommonName(jobId)));
  for (const { name } of clients) issued.clients.set(name, await client(`client-${name}`, name));
  return issued;
}

/** The coordinators' access policy for `jobs`, in the format of `--access-policy`. */
export function accessPolicy(jobs: readonly SecureJob[]): { principals: object[] } {
  const byCertificate = (commonName: string): { certificate: { commonName: string } } => ({ certificate: { commonName } }); // prettier-ignore
  return {
    principals: [
      { name: 'operators', roles: ['operator'], jobs: ['*'], ...byCertificate(COMMON_NAMES.operator) },
      { name: 'readers', roles: ['reader'], jobs: ['*'], ...byCertificate(COMMON_NAMES.reader) },
      // A standby forwards the dashboard's queries to the leader with its own certificate.
      { name: 'coordinators', roles: ['reader'], jobs: ['*'], ...byCertificate(COMMON_NAMES.coordinator) },
      ...jobs.map(({ jobId }) => ({
        name: `${jobId}-workers`,
        roles: ['worker'],
        jobs: [jobId],
        ...byCertificate(workerCommonName(jobId)),
      })),
    ],
  };
}

/**
 * etcd's `--auth-token` for JWTs signed with a new RSA key in the CA's
 * directory, valid longer than any local run: the etcd3 client logs in
 * again when a unary call finds its token expired, but not for a watch.
 */
async function jwtTokenOption(ca: LocalCa): Promise<string> {
  const key = await createRsaKey(join(ca.dir, 'etcd-jwt'));
  return `jwt,pub-key=${key.publicKey},priv-key=${key.privateKey},sign-method=RS256,ttl=${ETCD_TOKEN_TTL}`;
}

/** How long an etcd token stays valid. */
const ETCD_TOKEN_TTL = '24h';

/** Client TLS of the NATS servers: certificates of the CA required. */
function natsTlsBlock(caFile: string, server: CertFiles): string {
  return [
    '# Clients speak TLS and present a certificate of the local CA; their user then proves who they are.',
    'tls {',
    `  cert_file: "${server.cert}"`,
    `  key_file: "${server.key}"`,
    `  ca_file: "${caFile}"`,
    '  verify: true',
    '  timeout: 5',
    '}',
    '',
  ].join('\n');
}

function password(): string {
  return randomBytes(18).toString('base64url');
}

function required<T>(value: T | undefined, what: string, why: string): T {
  if (value === undefined) throw new Error(`the secure cluster has no ${what}: ${why}`);
  return value;
}
