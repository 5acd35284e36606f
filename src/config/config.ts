/**
 * The coordinator's configuration: every option with its doc comment and
 * default (`CoordinatorConfig`, `DEFAULT_CONFIG`) and its bounds. One
 * function, `resolveConfig` (`resolve-config.ts`), turns options from
 * flags, environment variables and code into a complete, validated config.
 * Environment variable names are the option names in CONSTANT_CASE with a
 * `CKPT_` prefix (`heartbeatTimeoutMs` → `CKPT_HEARTBEAT_TIMEOUT_MS`).
 */
import type { LevelWithSilent } from 'pino';
import { DEFAULT_ID_BLOCK_SIZE } from '../core/id-allocator.js';
import { DEFAULT_HISTORY_SIZE } from '../core/job-checkpoints.js';
import { DEFAULT_JOB_GROUPS } from '../core/job-groups.js';
import { DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import { DEFAULT_STATE_URI_SCHEMES } from '../core/snapshot-checks.js';
import {
  DEFAULT_CANCELED_STATE_RETENTION_MS,
  DEFAULT_ORPHAN_GRACE_MS,
  DEFAULT_STATE_SWEEP_INTERVAL_MS,
} from '../core/state-sweep.js';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../store/index.js';
import { DEFAULT_CONNECTION_SECURITY, type ConnectionSecurityConfig } from './connection-security.js';
import { envName } from './env-name.js';

/**
 * The complete configuration of a coordinator process; the `Limits` are
 * documented in `src/core/limits.ts`, the credentials and TLS of NATS and
 * etcd in `src/config/connection-security.ts`.
 */
export interface CoordinatorConfig extends Limits, ConnectionSecurityConfig {
  /** etcd client URLs. @default ['http://127.0.0.1:2379'] */
  etcd: string[];
  /** NATS server URLs. @default ['nats://127.0.0.1:4222'] */
  nats: string[];
  /** gRPC listen address, host:port; port 0 picks a free one. @default '127.0.0.1:7070' */
  listen: string;
  /**
   * The gRPC address (host:port) other coordinators and clients reach this
   * one at; the leader publishes it in its election key and standbys name
   * it in NOT_LEADER refusals. @default undefined (the listen address with
   * the port actually bound)
   */
  advertise: string | undefined;
  /**
   * HTTP listen address (host:port) of `/metrics`, `/healthz` and
   * `/readyz`; port 0 picks a free one. @default undefined: the gRPC host
   * and the gRPC port + 1 (port 0 when the gRPC port is 0); should that
   * port be taken, a free one, with a warning
   */
  httpListen: string | undefined;
  /**
   * `on`: the HTTP port serves HTTPS with the gRPC server's certificate
   * (`tlsCert`, `tlsKey`, reloaded alike), and asks clients for a
   * certificate signed by `tlsClientCa` when that is set. @default 'off'
   */
  httpTls: 'on' | 'off';
  /**
   * TTL of the lease behind the leader election. A leader that cannot renew
   * its lease for this long steps down; a crashed leader is replaced after
   * at most about this long. Sent to etcd in whole seconds, rounded up.
   * @default 5000
   */
  leaseTtlMs: number;
  /**
   * How often a standby checks, with a TCP connection, that a process still
   * listens at the leader's advertised address. When the leader's host
   * refuses three in a row, its process is gone: the standby revokes the
   * leader's election lease and the next coordinator takes over at once,
   * instead of after the lease TTL. A leader revoked by mistake can no
   * longer commit (every commit is fenced by its key) and steps down. 0
   * turns the check off.
   * @default 100
   */
  leaderProbeIntervalMs: number;
  /**
   * Job groups: independent leader elections among the coordinators of one
   * etcd prefix, each job in group `fnv1a32(jobId) mod jobGroups` led by
   * that group's leader, so that several coordinators share the jobs and a
   * fail-over moves only the jobs of the one that died. Every coordinator
   * campaigns in every group and leads about an even share. Fixed per
   * prefix: recorded in etcd by the first coordinator, and one started
   * with another number refuses to start. 1: one leader runs every job.
   * @default 1
   */
  jobGroups: number;
  /** Prefix of every etcd key the coordinator writes; ends with '/'. @default '/ckpt/' */
  etcdPrefix: string;
  /** First token(s) of every NATS subject. @default 'ckpt' */
  subjectPrefix: string;
  /** When set, every gRPC call must carry `authorization: Bearer <token>`. @default undefined (no auth) */
  authToken: string | undefined;
  /**
   * A JSON file of principals, their credentials (bearer tokens or client
   * certificate names) and their roles on jobs: see
   * `src/server/access-policy.ts`. Read again every `tlsReloadIntervalMs`.
   * @default undefined (with `authToken`, its holder may do everything;
   * without, every caller may)
   */
  accessPolicy: string | undefined;
  /** Interval at which workers send heartbeats. @default 1000 */
  heartbeatIntervalMs: number;
  /** A session without a heartbeat for this long ends. @default 10000 */
  heartbeatTimeoutMs: number;
  /** Deadline of every etcd request. @default 5000 */
  etcdTimeoutMs: number;
  /** Largest gRPC message the coordinator accepts or sends. @default 67108864 (64 MiB) */
  maxMessageBytes: number;
  /** Checkpoint ids reserved per etcd write. @default 1000 */
  idBlockSize: number;
  /** Finished checkpoints remembered per job for listings. @default 100 */
  historySize: number;
  /** Time a graceful shutdown waits for calls in flight before forcing. @default 10000 */
  shutdownGraceMs: number;
  /** An `Attach` stream that sends no hello for this long is ended. @default 10000 */
  helloTimeoutMs: number;
  /** A standby waiting for its tasks that sends no heartbeat for this long is ended. @default 10000 */
  standbyTimeoutMs: number;
  /** URI schemes that acknowledged state handles may use. @default ['file', 'nats-obj'] */
  stateUriSchemes: string[];
  /**
   * Largest manifest read back from etcd (its encoded size, checked against
   * its root before any part is read). @default 268435456 (256 MiB)
   */
  maxManifestBytes: number;
  /**
   * A state piece that no retained checkpoint or savepoint names, of a
   * checkpoint that may no longer commit, is deleted as an orphan once it
   * is this old: younger ones may belong to an upload under way.
   * @default 600000 (10 minutes)
   */
  orphanGraceMs: number;
  /** The leader sweeps its jobs' state for orphans this often, and at its start. @default 300000 (5 minutes) */
  stateSweepIntervalMs: number;
  /**
   * A canceled job's state is kept this long after the cancel (or after
   * the start of the leader that found the job canceled), then deleted.
   * @default 0 (at once)
   */
  canceledStateRetentionMs: number;
  /** pino log level. @default 'info' */
  logLevel: LevelWithSilent;

  // TLS of the gRPC API (see the README's TLS section).
  /** PEM certificate chain the gRPC server presents; with `tlsKey`, the server speaks only TLS. @default undefined (plaintext) */
  tlsCert: string | undefined;
  /** PEM private key of `tlsCert`. @default undefined */
  tlsKey: string | undefined;
  /** PEM CA certificates; when set, every client must present a certificate they signed (mutual TLS). @default undefined */
  tlsClientCa: string | undefined;
  /** How often the TLS files are read again; changed files serve new connections. @default 60000 */
  tlsReloadIntervalMs: number;
  /**
   * PEM CA certificates with which a standby checks the leader it forwards
   * dashboard queries to. @default undefined: `tlsClientCa` when set (a
   * cluster whose one CA signs servers and clients), else the system CAs
   */
  peerTlsCa: string | undefined;
  /** Client certificate a standby presents to the leader. @default undefined: `tlsCert` when `tlsClientCa` is set */
  peerTlsCert: string | undefined;
  /** Private key of `peerTlsCert`. @default undefined: `tlsKey` when `tlsClientCa` is set */
  peerTlsKey: string | undefined;
  /** Name the leader's certificate must be valid for. @default undefined: the leader's advertised host */
  peerTlsServerName: string | undefined;
}

/**
 * Largest `idBlockSize`: ids, epochs and floors stay far below the 2^52 the
 * store accepts, after billions of blocks.
 */
export const MAX_ID_BLOCK_SIZE = 1_000_000;

/** Default of `CoordinatorConfig.leaseTtlMs`. */
export const DEFAULT_LEASE_TTL_MS = 5000;
/** Smallest `leaseTtlMs`: etcd leases count in whole seconds. */
export const MIN_LEASE_TTL_MS = 1000;
/** Default of `CoordinatorConfig.leaderProbeIntervalMs`. */
export const DEFAULT_LEADER_PROBE_INTERVAL_MS = 100;
/** Largest `leaderProbeIntervalMs`. */
export const MAX_LEADER_PROBE_INTERVAL_MS = 60_000;

/** Default of `CoordinatorConfig.tlsReloadIntervalMs`. */
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 60_000;

/** Every option, as given by a user: strings from flags and env, or typed values from code. */
export type CoordinatorConfigInput = { [K in keyof CoordinatorConfig]?: CoordinatorConfig[K] | string };

/** The defaults of every option. */
export const DEFAULT_CONFIG: Readonly<CoordinatorConfig> = Object.freeze({
  etcd: ['http://127.0.0.1:2379'],
  nats: ['nats://127.0.0.1:4222'],
  listen: '127.0.0.1:7070',
  advertise: undefined,
  httpListen: undefined,
  leaseTtlMs: DEFAULT_LEASE_TTL_MS,
  leaderProbeIntervalMs: DEFAULT_LEADER_PROBE_INTERVAL_MS,
  jobGroups: DEFAULT_JOB_GROUPS,
  etcdPrefix: '/ckpt/',
  subjectPrefix: 'ckpt',
  authToken: undefined,
  accessPolicy: undefined,
  httpTls: 'off',
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 10_000,
  etcdTimeoutMs: 5000,
  maxMessageBytes: 64 * 1024 * 1024,
  idBlockSize: DEFAULT_ID_BLOCK_SIZE,
  historySize: DEFAULT_HISTORY_SIZE,
  shutdownGraceMs: 10_000,
  helloTimeoutMs: 10_000,
  standbyTimeoutMs: 10_000,
  stateUriSchemes: [...DEFAULT_STATE_URI_SCHEMES],
  maxManifestBytes: DEFAULT_MAX_MANIFEST_BYTES,
  orphanGraceMs: DEFAULT_ORPHAN_GRACE_MS,
  stateSweepIntervalMs: DEFAULT_STATE_SWEEP_INTERVAL_MS,
  canceledStateRetentionMs: DEFAULT_CANCELED_STATE_RETENTION_MS,
  logLevel: 'info',
  tlsCert: undefined,
  tlsKey: undefined,
  tlsClientCa: undefined,
  tlsReloadIntervalMs: DEFAULT_TLS_RELOAD_INTERVAL_MS,
  peerTlsCa: undefined,
  peerTlsCert: undefined,
  peerTlsKey: undefined,
  peerTlsServerName: undefined,
  ...DEFAULT_LIMITS,
  ...DEFAULT_CONNECTION_SECURITY,
});

/** For the README and `--help`: every option with its environment variable and default. */
export function describeOptions(): Array<{ option: string; env: string; default: string }> {
  return (Object.keys(DEFAULT_CONFIG) as Array<keyof CoordinatorConfig>).map((k) => ({
    option: k,
    env: envName(k),
    default: JSON.stringify(DEFAULT_CONFIG[k]) ?? 'unset',
  }));
}
