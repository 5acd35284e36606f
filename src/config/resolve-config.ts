/**
 * `resolveConfig`: options from code over environment variables over the
 * defaults (`config.ts`), normalised and validated, with an error that
 * names the option and its environment variable.
 */
import type { LevelWithSilent } from 'pino';
import { CkptError } from '../core/errors.js';
import { isHostPort } from '../core/host-port.js';
import { MAX_JOB_GROUPS } from '../core/job-groups.js';
import { CEILING_LIMITS, DEFAULT_LIMITS, type Limits } from '../core/limits.js';
import { MAX_MAX_MANIFEST_BYTES } from '../store/index.js';
import { LOG_LEVELS } from '../log/index.js';
import {
  DEFAULT_CONFIG,
  MAX_ID_BLOCK_SIZE,
  MAX_LEADER_PROBE_INTERVAL_MS,
  MIN_LEASE_TTL_MS,
  type CoordinatorConfig,
  type CoordinatorConfigInput,
} from './config.js';
import { resolveConnectionSecurity } from './connection-security.js';
import { envName } from './env-name.js';

function invalid(option: string, message: string): CkptError {
  return new CkptError('MALFORMED', `option ${option} (${envName(option)}) ${message}`);
}

function list(option: string, value: unknown): string[] {
  const items = (Array.isArray(value) ? value.map(String) : String(value).split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw invalid(option, 'needs at least one URL');
  return items;
}

function integer(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n =
    typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw invalid(option, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

function schemes(option: string, value: unknown): string[] {
  const items = Array.isArray(value) ? value.map(String) : String(value).split(',');
  const names = items.map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw invalid(option, 'needs at least one URI scheme');
  for (const name of names)
    if (!/^[a-z][a-z0-9+.-]{0,31}$/.test(name)) throw invalid(option, `${JSON.stringify(name)} is not a URI scheme`);
  return names;
}

/** Every limit, each between 1 and its ceiling (`CEILING_LIMITS`). */
function limits(pick: (k: keyof CoordinatorConfig) => unknown): Limits {
  const resolved = {} as Limits;
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof Limits>) {
    resolved[key] = integer(key, pick(key), 1, CEILING_LIMITS[key]);
  }
  return resolved;
}

/**
 * Merges `input` over the environment over the defaults, normalises and
 * validates; throws MALFORMED naming the option at the first problem.
 */
export function resolveConfig(
  input: CoordinatorConfigInput = {},
  env: NodeJS.ProcessEnv = process.env,
): CoordinatorConfig {
  const pick = (k: keyof CoordinatorConfig): unknown => {
    const given = input[k];
    if (given !== undefined) return given;
    const fromEnv = env[envName(k)];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_CONFIG[k];
  };
  const config: CoordinatorConfig = {
    etcd: list('etcd', pick('etcd')),
    nats: list('nats', pick('nats')),
    listen: String(pick('listen')),
    advertise: optionalString('advertise', pick('advertise')),
    httpListen: optionalString('httpListen', pick('httpListen')),
    leaseTtlMs: integer('leaseTtlMs', pick('leaseTtlMs'), MIN_LEASE_TTL_MS),
    leaderProbeIntervalMs: integer(
      'leaderProbeIntervalMs',
      pick('leaderProbeIntervalMs'),
      0,
      MAX_LEADER_PROBE_INTERVAL_MS,
    ),
    jobGroups: integer('jobGroups', pick('jobGroups'), 1, MAX_JOB_GROUPS),
    etcdPrefix: String(pick('etcdPrefix')),
    subjectPrefix: String(pick('subjectPrefix')),
    authToken: optionalString('authToken', pick('authToken')),
    accessPolicy: optionalString('accessPolicy', pick('accessPolicy')),
    httpTls: onOff('httpTls', pick('httpTls')),
    heartbeatIntervalMs: integer('heartbeatIntervalMs', pick('heartbeatIntervalMs'), 10),
    heartbeatTimeoutMs: integer('heartbeatTimeoutMs', pick('heartbeatTimeoutMs'), 20),
    etcdTimeoutMs: integer('etcdTimeoutMs', pick('etcdTimeoutMs'), 100),
    maxMessageBytes: integer('maxMessageBytes', pick('maxMessageBytes'), 64 * 1024),
    idBlockSize: integer('idBlockSize', pick('idBlockSize'), 1, MAX_ID_BLOCK_SIZE),
    historySize: integer('historySize', pick('historySize'), 1),
    shutdownGraceMs: integer('shutdownGraceMs', pick('shutdownGraceMs'), 0),
    helloTimeoutMs: integer('helloTimeoutMs', pick('helloTimeoutMs'), 10),
    standbyTimeoutMs: integer('standbyTimeoutMs', pick('standbyTimeoutMs'), 2000),
    stateUriSchemes: schemes('stateUriSchemes', pick('stateUriSchemes')),
    maxManifestBytes: integer('maxManifestBytes', pick('maxManifestBytes'), 1024, MAX_MAX_MANIFEST_BYTES),
    orphanGraceMs: integer('orphanGraceMs', pick('orphanGraceMs'), 0),
    stateSweepIntervalMs: integer('stateSweepIntervalMs', pick('stateSweepIntervalMs'), 100),
    canceledStateRetentionMs: integer('canceledStateRetentionMs', pick('canceledStateRetentionMs'), 0),
    logLevel: String(pick('logLevel')) as LevelWithSilent,
    ...tlsOptions(pick),
    ...limits(pick),
    ...resolveConnectionSecurity(pick),
  };
  checkConfig(config);
  return config;
}

type TlsOptionName =
  | 'tlsCert'
  | 'tlsKey'
  | 'tlsClientCa'
  | 'tlsReloadIntervalMs'
  | 'peerTlsCa'
  | 'peerTlsCert'
  | 'peerTlsKey'
  | 'peerTlsServerName';

/** The TLS options; the files themselves are read and checked when the server starts. */
function tlsOptions(pick: (k: keyof CoordinatorConfig) => unknown): Pick<CoordinatorConfig, TlsOptionName> {
  const file = (k: TlsOptionName): string | undefined => {
    const value = optionalString(k, pick(k));
    return value === '' ? undefined : value;
  };
  const tls = {
    tlsCert: file('tlsCert'),
    tlsKey: file('tlsKey'),
    tlsClientCa: file('tlsClientCa'),
    tlsReloadIntervalMs: integer('tlsReloadIntervalMs', pick('tlsReloadIntervalMs'), 100),
    peerTlsCa: file('peerTlsCa'),
    peerTlsCert: file('peerTlsCert'),
    peerTlsKey: file('peerTlsKey'),
    peerTlsServerName: file('peerTlsServerName'),
  };
  if ((tls.tlsCert === undefined) !== (tls.tlsKey === undefined))
    throw invalid(tls.tlsCert === undefined ? 'tlsCert' : 'tlsKey', 'must be given together with its pair');
  if (tls.tlsClientCa !== undefined && tls.tlsCert === undefined)
    throw invalid('tlsClientCa', 'needs tlsCert and tlsKey: client certificates are checked only over TLS');
  if ((tls.peerTlsCert === undefined) !== (tls.peerTlsKey === undefined))
    throw invalid(tls.peerTlsCert === undefined ? 'peerTlsCert' : 'peerTlsKey', 'must be given together with its pair');
  return tls;
}

function onOff(option: string, value: unknown): 'on' | 'off' {
  if (value === true || value === 'on' || value === 'true') return 'on';
  if (value === false || value === 'off' || value === 'false') return 'off';
  throw invalid(option, `must be on or off, got ${JSON.stringify(value)}`);
}

function optionalString(option: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(option, 'must be a string');
  return value;
}

function checkConfig(c: CoordinatorConfig): void {
  if (!isHostPort(c.listen)) throw invalid('listen', `must be host:port, got ${JSON.stringify(c.listen)}`);
  if (c.advertise === '') c.advertise = undefined;
  if (c.httpListen === '') c.httpListen = undefined;
  if (c.httpListen !== undefined && !isHostPort(c.httpListen))
    throw invalid('httpListen', `must be host:port, got ${JSON.stringify(c.httpListen)}`);
  if (c.advertise !== undefined && (!isHostPort(c.advertise) || c.advertise.endsWith(':0')))
    throw invalid('advertise', `must be host:port with a port other than 0, got ${JSON.stringify(c.advertise)}`);
  if (!c.etcdPrefix.endsWith('/')) throw invalid('etcdPrefix', 'must end with "/"');
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(c.subjectPrefix))
    throw invalid('subjectPrefix', 'must be dot-separated tokens of [A-Za-z0-9_-]');
  if (c.authToken === '') c.authToken = undefined;
  if (c.accessPolicy === '') c.accessPolicy = undefined;
  if (c.httpTls === 'on' && c.tlsCert === undefined)
    throw invalid('httpTls', "needs tlsCert and tlsKey: the HTTP port serves the gRPC server's certificate");
  if (c.heartbeatTimeoutMs <= c.heartbeatIntervalMs)
    throw invalid('heartbeatTimeoutMs', 'must be larger than heartbeatIntervalMs');
  if (!LOG_LEVELS.includes(c.logLevel)) throw invalid('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  for (const url of c.etcd)
    if (!/^https?:\/\//.test(url)) throw invalid('etcd', `URL ${url} must start with http:// or https://`);
}
