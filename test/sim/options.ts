/**
 * Options of the simulated worker, their defaults and validation.
 */
import { parseAddresses, type ClientOptions } from '../../src/client/index.js';
import { CkptError } from '../../src/core/errors.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../../src/log/index.js';
import { DEFAULT_MAX_ACK_REQUEST_BYTES } from '../../src/worker-protocol/index.js';
import { assertSubjectPrefix, assertSubjectToken, DEFAULT_SUBJECT_PREFIX } from '../../src/bus/index.js';

/** What a hook sees when its task has snapshotted a checkpoint. */
export interface SnapshotContext {
  taskId: string;
  checkpointId: number;
  epoch: number;
  /** The deterministic snapshot the task would acknowledge. */
  snapshot: TaskSnapshot__Output;
}

/** A hook's verdict: one of the fixed behaviours, or a snapshot to acknowledge instead. */
export type HookResult = 'ack' | 'decline' | 'silent' | TaskSnapshot__Output;

/** Decides per checkpoint what a task does. */
export type BehaviourHook = (context: SnapshotContext) => HookResult | Promise<HookResult>;

/**
 * What a task does once it has snapshotted: acknowledge, decline, or stay
 * silent (never acknowledge, as a task whose upload hangs). In every case
 * the task forwards its barrier first, so downstream tasks are unaffected.
 */
export type TaskBehaviour = 'ack' | 'decline' | 'silent' | BehaviourHook;

/** Options of `startSimulatedWorker`. */
export interface SimulatedWorkerOptions {
  /**
   * The coordinator's gRPC address, `host:port`, or several (an array or a
   * comma-separated list): calls and the session follow the leader.
   */
  coordinator: string | readonly string[];
  /** Bearer token for the coordinator. Default: none. */
  token?: string;
  /** TLS towards the coordinator, as `ClientOptions.tls`. Default: none (plaintext). */
  tls?: ClientOptions['tls'];
  /** HTTP/2 keepalive towards the coordinator, as `ClientOptions.keepalive`. Default: the client's. */
  keepalive?: ClientOptions['keepalive'];
  /** NATS server URLs. */
  nats: string[];
  /** The subject prefix the coordinator uses. Default `'ckpt'`. */
  subjectPrefix?: string;
  jobId: string;
  /** Unique among the job's live workers. */
  workerId: string;
  /** The tasks this worker runs; all must be in `spec`. */
  taskIds: string[];
  /** The job's spec, for the task graph and the alignment mode. */
  spec: JobSpec;
  /** Size each task reports for its state. Default 1024. */
  stateBytes?: number;
  /**
   * One behaviour for every task, or a behaviour per task id (missing tasks
   * acknowledge). Default `'ack'`.
   */
  behaviour?: TaskBehaviour | Record<string, TaskBehaviour>;
  /** How long to collect this worker's acknowledgements of one checkpoint. Default 5 ms. */
  ackBatchMs?: number;
  /** Largest estimated request of one acknowledgement (call or session message). Default 3 MiB. */
  maxAckRequestBytes?: number;
  /** Deadline of acknowledgements. Default 10000 ms. */
  ackDeadlineMs?: number;
  /** How long a batch's failing acknowledgement is retried while the coordinator is unreachable. Default 10000 ms. */
  ackRetryTimeoutMs?: number;
  /**
   * How acknowledgements and declines travel: `'session'` (default) as
   * messages in the worker's `Attach` stream, `'call'` as AcknowledgeCheckpoint
   * and DeclineCheckpoint calls.
   */
  acknowledgeVia?: 'session' | 'call';
  /** How long to wait for the welcome. Default 10000 ms. */
  attachTimeoutMs?: number;
  /** Labels sent in the hello. Default `{ sdk: 'ckpt-sim' }`. */
  labels?: Record<string, string>;
  /**
   * When the session ends (a coordinator restart, a change of leader),
   * attach again with backoff, at the leader a standby names or else at the
   * next address, naming the worker's epoch in the hello. Default false:
   * the worker stays detached and only reports `session-ended`.
   */
  reattach?: boolean;
  logger: Logger;
}

/** Default of `SimulatedWorkerOptions.stateBytes`. */
export const DEFAULT_SIM_STATE_BYTES = 1024;
/** Default of `SimulatedWorkerOptions.ackBatchMs`. */
export const DEFAULT_ACK_BATCH_MS = 5;
/** Default of `SimulatedWorkerOptions.ackDeadlineMs`. */
export const DEFAULT_ACK_DEADLINE_MS = 10_000;
/** Default of `SimulatedWorkerOptions.ackRetryTimeoutMs`. */
export const DEFAULT_ACK_RETRY_TIMEOUT_MS = 10_000;
/** Default of `SimulatedWorkerOptions.attachTimeoutMs`. */
export const DEFAULT_ATTACH_TIMEOUT_MS = 10_000;

/** The options with every default applied. */
export type SimConfig = Required<
  Omit<SimulatedWorkerOptions, 'token' | 'tls' | 'keepalive' | 'behaviour' | 'coordinator'>
> &
  Pick<SimulatedWorkerOptions, 'token' | 'tls' | 'keepalive'> & {
    coordinator: string[];
    behaviour: Record<string, TaskBehaviour>;
    defaultBehaviour: TaskBehaviour;
  };

/** Applies defaults and validates; errors name the option. */
export function resolveSimOptions(options: SimulatedWorkerOptions): SimConfig {
  assertSubjectToken(options.jobId, 'jobId');
  if (options.spec.jobId !== options.jobId) {
    throw new CkptError('MALFORMED', `spec.jobId ${options.spec.jobId ?? ''} is not jobId ${options.jobId}`);
  }
  if (options.workerId === '') throw new CkptError('MALFORMED', 'workerId: must not be empty');
  if (options.nats.length === 0) throw new CkptError('MALFORMED', 'nats: at least one server is required');
  const behaviour = options.behaviour;
  const perTask = typeof behaviour === 'object' ? behaviour : {};
  const coordinator = parseAddresses(options.coordinator);
  const config: SimConfig = {
    ...options,
    coordinator,
    reattach: options.reattach ?? false,
    subjectPrefix: assertSubjectPrefix(options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX, 'subjectPrefix'),
    stateBytes: nonNegative('stateBytes', options.stateBytes ?? DEFAULT_SIM_STATE_BYTES),
    ackBatchMs: nonNegative('ackBatchMs', options.ackBatchMs ?? DEFAULT_ACK_BATCH_MS),
    maxAckRequestBytes: nonNegative('maxAckRequestBytes', options.maxAckRequestBytes ?? DEFAULT_MAX_ACK_REQUEST_BYTES),
    ackDeadlineMs: nonNegative('ackDeadlineMs', options.ackDeadlineMs ?? DEFAULT_ACK_DEADLINE_MS),
    ackRetryTimeoutMs: nonNegative('ackRetryTimeoutMs', options.ackRetryTimeoutMs ?? DEFAULT_ACK_RETRY_TIMEOUT_MS),
    acknowledgeVia: options.acknowledgeVia ?? 'session',
    attachTimeoutMs: nonNegative('attachTimeoutMs', options.attachTimeoutMs ?? DEFAULT_ATTACH_TIMEOUT_MS),
    labels: options.labels ?? { sdk: 'ckpt-sim' },
    behaviour: { ...perTask },
    defaultBehaviour: typeof behaviour === 'string' || typeof behaviour === 'function' ? behaviour : 'ack',
  };
  for (const taskId of options.taskIds) assertSubjectToken(taskId, 'task id');
  return config;
}

function nonNegative(option: string, value: number): number {
  if (!Number.isFinite(value) || value < 0)
    throw new CkptError('MALFORMED', `${option}: ${value} is not a non-negative number`);
  return value;
}
