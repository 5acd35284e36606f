/**
 * Options of a `Worker`, their defaults and validation.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  assertSubjectToken,
  loadNatsAuth,
  natsAuthFromEnv,
  readSecretFile,
  workerInboxPrefix,
  type NatsAuthOptions,
  type NatsConnectAuth,
} from '../bus/index.js';
import { DEFAULT_CLIENT_MAX_MESSAGE_BYTES, parseAddresses } from '../client/index.js';
import { clientTlsFromEnv, type ClientTlsOptions } from '../client/index.js';
import type { Registry } from 'prom-client';
import { CkptError } from '../core/errors.js';
import { isHostPort } from '../core/host-port.js';
import { silentLogger, type Logger } from '../log/index.js';
import { resolveBackoff, type BackoffConfig, type BackoffOptions } from '../core/backoff.js';
import type { StateBackend } from './state/index.js';
import { DEFAULT_MAX_ACK_REQUEST_BYTES } from '../worker-protocol/index.js';

/** Options of `new Worker(...)` / `createWorker(...)`. */
export interface WorkerOptions {
  /**
   * The coordinator's gRPC address, `host:port`, or several (an array or a
   * comma-separated list) when coordinators run as leader and standbys:
   * the worker follows the leader among them. Required.
   */
  coordinator: string | readonly string[];
  /**
   * Bearer token the coordinator knows this worker by (its `--auth-token`,
   * or a principal's token in its access policy). Default: with neither
   * `token` nor `tokenFile`, `CKPT_AUTH_TOKEN` or `CKPT_TOKEN_FILE` from the
   * environment, else none.
   */
  token?: string;
  /** A file holding the bearer token (surrounding whitespace dropped); excludes `token`. Default: none. */
  tokenFile?: string;
  /** NATS server URLs. Required, at least one. */
  nats: string[];
  /** The job the worker's tasks belong to. Required. */
  jobId: string;
  /** Unique among the job's live workers. Default `<host>:<pid>:<random>`. */
  workerId?: string;
  /** Where snapshots are stored and fetched back from. Required. */
  state: StateBackend;
  /** Default: a logger that drops everything. */
  logger?: Logger;
  /** How long to collect this worker's acknowledgements of one checkpoint. Default 5 ms. */
  ackBatchMs?: number;
  /** Deadline of one acknowledgement or decline. Default 10000 ms. */
  ackDeadlineMs?: number;
  /**
   * How acknowledgements and declines travel: `'session'` (default) as
   * messages in the worker's `Attach` stream while it is open, else as calls;
   * `'call'` always as AcknowledgeCheckpoint and DeclineCheckpoint calls.
   */
  acknowledgeVia?: 'session' | 'call';
  /** How long a failing acknowledgement is retried while the coordinator is unreachable. Default 30000 ms. */
  ackRetryTimeoutMs?: number;
  /**
   * Largest estimated acknowledgement message: a worker with many tasks
   * sends one checkpoint's acknowledgements in several. Default 3 MiB.
   */
  maxAckRequestBytes?: number;
  /** How long one attach attempt waits for the welcome. Default 10000 ms. */
  attachTimeoutMs?: number;
  /** How long `start()` keeps trying to attach while the coordinator is unreachable. Default 30000 ms. */
  startTimeoutMs?: number;
  /** Backoff between attach attempts and acknowledgement retries. Defaults: see `BackoffOptions`. */
  reconnect?: BackoffOptions;
  /** How many messages a source reads ahead of its task. Default 256. */
  maxQueuedSourceMessages?: number;
  /**
   * Flow control of the edges the worker's tasks read: each reader takes at
   * most this many records of an edge beyond those it has processed, and
   * tells the edge's writer so with credits (see proto/PROTOCOL.md); a
   * writer over the window of an output stops taking input. 0: no credits
   * are sent, and writers send on this worker's input edges without limit.
   * Default 1024.
   */
  flowControlWindow?: number;
  /**
   * After a recovery or `stop()`, how long a task's call of the ended epoch
   * (a `process` or `snapshot` that has not returned: a hung task) is waited
   * for before it is abandoned and the task restores or closes without it.
   * Keep task state in the task context: state held elsewhere may still be
   * changed by an abandoned call that returns late. Default 10000 ms.
   */
  abandonCallAfterMs?: number;
  /**
   * Largest gRPC message the worker receives or sends, in bytes: a restore
   * command names every snapshot of the worker's tasks and may be large.
   * Default 64 MiB, the coordinator's default `--max-message-bytes`.
   */
  maxMessageBytes?: number;
  /** Labels sent in the hello, added to the SDK's own (`sdk`, `language`, `host`). */
  labels?: Record<string, string>;
  /**
   * Start as a standby: `start()` waits, without a deadline, until the
   * session that runs the worker's tasks ends, and then the worker takes
   * them over at once (or at once, when no session runs them). A process
   * started ahead of need spares a recovery the process start. Default
   * false.
   */
  standby?: boolean;
  /**
   * The worker's own Prometheus metrics (`ckpt_worker_*`, per task; see
   * the README): registered into `registry`, served on `listen`, or both.
   * Default: none, at no cost.
   */
  metrics?: WorkerMetricsOptions;
  /** Aborting it stops the worker (as `stop()`). */
  signal?: AbortSignal;

  // TLS of the coordinator connection.
  /**
   * TLS towards the coordinator: `true` checks its certificate against the
   * system CAs; an object names a CA, a client certificate (mutual TLS) and
   * the server name. `false`: plaintext. Default: from the environment
   * (`CKPT_TLS`, `CKPT_TLS_CA`, `CKPT_TLS_CLIENT_CERT`,
   * `CKPT_TLS_CLIENT_KEY`, `CKPT_TLS_SERVER_NAME`), else plaintext.
   */
  tls?: boolean | ClientTlsOptions;
  // Credentials and TLS of the worker's NATS connection.
  /**
   * How the worker authenticates to NATS and checks the server's
   * certificate: user and password, token, NKey seed file or creds file,
   * and TLS with a CA file and a client certificate. Every secret may be
   * given as a file. Files are read by the constructor, whose error names
   * the option. Default: from the environment variables the coordinator
   * reads (`CKPT_NATS_USER`, `CKPT_NATS_PASSWORD_FILE`, ...: see
   * `natsAuthFromEnv`), none when they are unset. The inbox prefix defaults
   * to `workerInboxPrefix(jobId)`, which a deployment's permissions expect.
   */
  natsAuth?: NatsAuthOptions;
}

/** Where a worker's metrics go; give `registry`, `listen` or both. */
export interface WorkerMetricsOptions {
  /**
   * A prom-client registry to register the metrics into, which the caller
   * serves; workers of one process may share one. Default: a registry of
   * the worker's own.
   */
  registry?: Registry;
  /**
   * `host:port` to serve `GET /metrics` on, port 0 for a free one (see
   * `Worker.metricsAddress`); bound by `start()`, closed by `stop()`.
   * Default: not served.
   */
  listen?: string;
}

/** Default of `WorkerOptions.ackBatchMs`. */
export const DEFAULT_ACK_BATCH_MS = 5;
/** Default of `WorkerOptions.ackDeadlineMs`. */
export const DEFAULT_ACK_DEADLINE_MS = 10_000;
/** Default of `WorkerOptions.ackRetryTimeoutMs`. */
export const DEFAULT_ACK_RETRY_TIMEOUT_MS = 30_000;
/** Default of `WorkerOptions.attachTimeoutMs`. */
export const DEFAULT_ATTACH_TIMEOUT_MS = 10_000;
/** Default of `WorkerOptions.startTimeoutMs`. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;
/** Default of `WorkerOptions.maxQueuedSourceMessages`. */
export const DEFAULT_MAX_QUEUED_SOURCE_MESSAGES = 256;
/** Default of `WorkerOptions.flowControlWindow`. */
export const DEFAULT_FLOW_CONTROL_WINDOW = 1024;
/** Default of `WorkerOptions.abandonCallAfterMs`. */
export const DEFAULT_ABANDON_CALL_AFTER_MS = 10_000;
/** The `sdk` label of this SDK. */
export const SDK_LABEL = 'ckpt-ts';

/** The options with every default applied. */
export interface WorkerConfig {
  coordinator: string[];
  token: string | undefined;
  nats: string[];
  jobId: string;
  workerId: string;
  state: StateBackend;
  logger: Logger;
  ackBatchMs: number;
  ackDeadlineMs: number;
  acknowledgeVia: 'session' | 'call';
  ackRetryTimeoutMs: number;
  maxAckRequestBytes: number;
  attachTimeoutMs: number;
  startTimeoutMs: number;
  reconnect: BackoffConfig;
  maxQueuedSourceMessages: number;
  flowControlWindow: number;
  abandonCallAfterMs: number;
  maxMessageBytes: number;
  labels: Record<string, string>;
  standby: boolean;
  metrics: WorkerMetricsConfig | undefined;
  signal: AbortSignal | undefined;
  /** TLS towards the coordinator; undefined: plaintext. */
  tls: ClientTlsOptions | undefined;

  // Credentials and TLS of the worker's NATS connection, files read.
  natsAuth: NatsConnectAuth;
}

/** `WorkerOptions.metrics`, checked. */
export interface WorkerMetricsConfig {
  registry: Registry | undefined;
  listen: string | undefined;
}

/** A worker id unique per process: `<host>:<pid>:<random>`. */
export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/** Applies defaults and validates; errors name the option. */
export function resolveWorkerOptions(options: WorkerOptions): WorkerConfig {
  const coordinator = parseAddresses(options.coordinator);
  if (!Array.isArray(options.nats) || options.nats.length === 0) {
    throw new CkptError('MALFORMED', 'nats: at least one NATS server is required');
  }
  assertSubjectToken(options.jobId, 'jobId');
  if (options.state === undefined || options.state === null) {
    throw new CkptError('MALFORMED', 'state: a state backend is required');
  }
  const workerId = options.workerId ?? defaultWorkerId();
  if (workerId === '') throw new CkptError('MALFORMED', 'workerId: must not be empty');
  return {
    coordinator,
    token: resolveToken(options),
    nats: [...options.nats],
    jobId: options.jobId,
    workerId,
    state: options.state,
    logger: options.logger ?? silentLogger(),
    ackBatchMs: nonNegative('ackBatchMs', options.ackBatchMs ?? DEFAULT_ACK_BATCH_MS),
    ackDeadlineMs: positive('ackDeadlineMs', options.ackDeadlineMs ?? DEFAULT_ACK_DEADLINE_MS),
    acknowledgeVia: oneOf('acknowledgeVia', options.acknowledgeVia ?? 'session', ['session', 'call'] as const),
    ackRetryTimeoutMs: nonNegative('ackRetryTimeoutMs', options.ackRetryTimeoutMs ?? DEFAULT_ACK_RETRY_TIMEOUT_MS),
    maxAckRequestBytes: positive('maxAckRequestBytes', options.maxAckRequestBytes ?? DEFAULT_MAX_ACK_REQUEST_BYTES),
    attachTimeoutMs: positive('attachTimeoutMs', options.attachTimeoutMs ?? DEFAULT_ATTACH_TIMEOUT_MS),
    startTimeoutMs: nonNegative('startTimeoutMs', options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS),
    reconnect: resolveBackoff(options.reconnect, 'reconnect'),
    maxQueuedSourceMessages: positive(
      'maxQueuedSourceMessages',
      options.maxQueuedSourceMessages ?? DEFAULT_MAX_QUEUED_SOURCE_MESSAGES,
    ),
    flowControlWindow: nonNegativeInteger(
      'flowControlWindow',
      options.flowControlWindow ?? DEFAULT_FLOW_CONTROL_WINDOW,
    ),
    abandonCallAfterMs: positive('abandonCallAfterMs', options.abandonCallAfterMs ?? DEFAULT_ABANDON_CALL_AFTER_MS),
    maxMessageBytes: positiveInteger('maxMessageBytes', options.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES),
    labels: { sdk: SDK_LABEL, language: 'typescript', host: hostname(), ...options.labels },
    standby: options.standby ?? false,
    metrics: resolveMetrics(options.metrics),
    signal: options.signal,
    tls: resolveTls(options.tls),

    natsAuth: loadNatsAuth(
      { inboxPrefix: workerInboxPrefix(options.jobId), ...(options.natsAuth ?? natsAuthFromEnv()) },
      (field) => `natsAuth.${field}`,
    ),
  };
}

/** The bearer token: `token` or `tokenFile`; with neither, like `tls` and `natsAuth`, from the environment the CLI reads too. */
function resolveToken(options: WorkerOptions): string | undefined {
  const fromEnv = (name: string): string | undefined => (process.env[name] === '' ? undefined : process.env[name]);
  const unset = options.token === undefined && options.tokenFile === undefined;
  const token = unset ? fromEnv('CKPT_AUTH_TOKEN') : options.token;
  const file = unset ? fromEnv('CKPT_TOKEN_FILE') : options.tokenFile;
  const [tokenName, fileName] = unset ? ['CKPT_AUTH_TOKEN', 'CKPT_TOKEN_FILE'] : ['token', 'tokenFile'];
  if (file === undefined) return token;
  if (token !== undefined)
    throw new CkptError('MALFORMED', `${tokenName} and ${fileName} exclude each other; give one`);
  const read = readSecretFile(file, fileName).trim();
  if (read === '') throw new CkptError('MALFORMED', `${fileName}: ${file} is empty`);
  return read;
}

function resolveTls(tls: WorkerOptions['tls']): ClientTlsOptions | undefined {
  if (tls === undefined) return clientTlsFromEnv();
  if (tls === false) return undefined;
  if (tls === true) return {};
  if (typeof tls !== 'object' || tls === null) throw new CkptError('MALFORMED', 'tls: must be a boolean or an object');
  return { ...tls };
}

function resolveMetrics(metrics: WorkerMetricsOptions | undefined): WorkerMetricsConfig | undefined {
  if (metrics === undefined) return undefined;
  if (metrics === null || typeof metrics !== 'object') {
    throw new CkptError('MALFORMED', 'metrics: must be an object with a registry, a listen address or both');
  }
  const { registry, listen } = metrics;
  if (registry === undefined && listen === undefined) {
    throw new CkptError('MALFORMED', 'metrics: give a registry, a listen address or both');
  }
  if (registry !== undefined && !isRegistry(registry)) {
    throw new CkptError('MALFORMED', 'metrics.registry: must be a prom-client Registry');
  }
  if (listen !== undefined && (typeof listen !== 'string' || !isHostPort(listen))) {
    const shown = typeof listen === 'string' ? JSON.stringify(listen) : `a ${typeof listen}`;
    throw new CkptError('MALFORMED', `metrics.listen: must be host:port (port 0 for a free one), got ${shown}`);
  }
  return { registry, listen };
}

/** A prom-client `Registry`, also one of another copy of prom-client than the SDK's. */
function isRegistry(value: unknown): value is Registry {
  const r = value as Partial<Record<'registerMetric' | 'metrics' | 'getSingleMetric', unknown>> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.registerMetric === 'function' &&
    typeof r.metrics === 'function' &&
    typeof r.getSingleMetric === 'function'
  );
}

function nonNegative(option: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new CkptError('MALFORMED', `${option}: ${value} is not a non-negative number`);
  }
  return value;
}

function positive(option: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new CkptError('MALFORMED', `${option}: ${value} is not positive`);
  return value;
}

function positiveInteger(option: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CkptError('MALFORMED', `${option}: ${value} is not a positive integer`);
  }
  return value;
}

function nonNegativeInteger(option: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CkptError('MALFORMED', `${option}: ${value} is not a non-negative integer`);
  }
  return value;
}

function oneOf<T extends string>(option: string, value: T, allowed: readonly T[]): T {
  if (!allowed.includes(value))
    throw new CkptError('MALFORMED', `${option}: ${String(value)} is not one of ${allowed.join(', ')}`);
  return value;
}
