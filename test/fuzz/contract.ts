/**
 * What the contract (proto/ckpt/v1) says a request must be refused for,
 * checked on the message as the coordinator decoded it: ids, worker ids,
 * numbers above 2^53-1, text and label sizes, state handles, policies and
 * enum numbers the contract does not name. Each check returns why the
 * request is invalid, or nothing when the contract allows it; it only
 * names what the contract states, so a request it passes may still be
 * refused for other reasons (an unknown job, a stale epoch).
 */
import type { Message, Value } from './wire.js';

/** Numbers above this are refused (coordinator.proto). */
export const MAX_NUMBER = 2n ** 53n - 1n;
/** Longest TaskFailure and TaskDecline message. */
export const MAX_MESSAGE_TEXT_BYTES = 4_096;
/** Longest state handle URI. */
export const MAX_URI_BYTES = 2_048;
/** Largest state size of a handle or a snapshot's metrics (1 TiB, the default max_state_bytes). */
export const MAX_STATE_BYTES = 2n ** 40n;
/** Longest policy duration (7 days, the default max_policy_duration_ms). */
export const MAX_POLICY_DURATION_MS = 7n * 24n * 3_600_000n;
/** Most labels. */
export const MAX_LABELS = 64;
/** Longest label key or value. */
export const MAX_LABEL_BYTES = 256;
/** URI schemes the fuzz coordinator accepts (`state_uri_schemes`). */
export const STATE_URI_SCHEMES = ['file', 'nats-obj', 'sim'] as const;

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const WORKER_ID = /^[\x21-\x7e]{1,256}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const CHECKSUM = /^sha256:[0-9a-f]{64}$/;

type Problems = string[];

/** One entry per kind: list indices and the numbers found are left out. */
function distinct(p: Problems): string[] {
  return [...new Set(p.map((x) => x.replace(/\[\d+\]/g, '[]')))];
}

function str(value: Value | undefined): string {
  return typeof value === 'string' ? value : '';
}

function big(value: Value | undefined): bigint {
  return typeof value === 'bigint' ? value : BigInt(typeof value === 'number' ? value : 0);
}

function list(value: Value | undefined): Value[] {
  return Array.isArray(value) ? value : [];
}

function obj(value: Value | undefined): Message | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
}

function bytes(value: string): number {
  return Buffer.byteLength(value);
}

function checkId(p: Problems, value: Value | undefined, field: string): void {
  if (!ID.test(str(value))) p.push(`${field} is not an id`);
}

function checkWorkerId(p: Problems, value: Value | undefined, field: string): void {
  if (!WORKER_ID.test(str(value))) p.push(`${field} is not 1-256 bytes of printable ASCII without spaces`);
}

function checkText(p: Problems, value: Value | undefined, max: number, field: string): void {
  if (bytes(str(value)) > max) p.push(`${field} is longer than ${max} bytes`);
}

function checkLabels(p: Problems, value: Value | undefined, field: string): void {
  const entries = Object.entries(obj(value) ?? {});
  if (entries.length > MAX_LABELS) p.push(`${field} has more than ${MAX_LABELS} labels`);
  if (entries.some(([k, v]) => bytes(k) > MAX_LABEL_BYTES || bytes(str(v)) > MAX_LABEL_BYTES))
    p.push(`${field} has a key or value longer than ${MAX_LABEL_BYTES} bytes`);
}

function checkEnum(p: Problems, value: Value | undefined, last: number, field: string): void {
  const n = typeof value === 'number' ? value : 0;
  if (n < 0 || n > last) p.push(`${field} ${n} is not a value of its enum`);
}

/** Every number of the message, at any depth, must be at most 2^53-1. */
function checkNumbers(p: Problems, value: Value | undefined, path: string): void {
  if (typeof value === 'bigint') {
    if (value > MAX_NUMBER) p.push(`${path} is above 2^53-1`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkNumbers(p, v, `${path}[${i}]`));
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) checkNumbers(p, v, path === '' ? k : `${path}.${k}`);
  }
}

function checkDistinct(p: Problems, ids: string[], field: string): void {
  if (new Set(ids).size !== ids.length) p.push(`${field} names an id twice`);
}

function checkHandle(p: Problems, handle: Message | undefined, stateSize: bigint, field: string): void {
  const uri = str(handle?.uri);
  const size = big(handle?.sizeBytes);
  const checksum = str(handle?.checksum);
  const shared = list(handle?.shared);
  const compression = typeof handle?.compression === 'number' ? handle.compression : 0;
  const rawSize = big(handle?.rawSizeBytes);
  checkEnum(p, compression, 3, `${field}.compression`);
  if (uri === '') {
    if (size !== 0n || checksum !== '' || shared.length > 0 || stateSize !== 0n || compression > 1 || rawSize !== 0n)
      p.push(`${field} without uri has a size, checksum, shared pieces, compression, raw size or state`);
    return;
  }
  if (rawSize > MAX_STATE_BYTES) p.push(`${field}.raw_size_bytes is above max_state_bytes`);
  if (compression <= 1 && rawSize !== 0n && rawSize !== size)
    p.push(`${field}.raw_size_bytes of uncompressed state is neither 0 nor size_bytes`);
  if (bytes(uri) > MAX_URI_BYTES) p.push(`${field}.uri is longer than ${MAX_URI_BYTES} bytes`);
  if (!PRINTABLE.test(uri)) p.push(`${field}.uri is not printable ASCII`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined || !(STATE_URI_SCHEMES as readonly string[]).includes(scheme))
    p.push(`${field}.uri scheme ${scheme ?? '(none)'} is not accepted`);
  if (size > MAX_STATE_BYTES) p.push(`${field}.size_bytes is above max_state_bytes`);
  if (checksum !== '' && !CHECKSUM.test(checksum)) p.push(`${field}.checksum is not sha256:<64 hex>`);
  shared.forEach((s, i) => checkHandle(p, obj(s), 0n, `${field}.shared[${i}]`));
}

function checkSnapshots(p: Problems, value: Value | undefined): void {
  const snapshots = list(value).map((s) => obj(s) ?? {});
  if (snapshots.length === 0) p.push('snapshots is empty');
  checkDistinct(
    p,
    snapshots.map((s) => str(s.taskId)),
    'snapshots',
  );
  snapshots.forEach((s, i) => {
    checkId(p, s.taskId, `snapshots[${i}].task_id`);
    const metrics = obj(s.metrics);
    checkHandle(p, obj(s.state), big(metrics?.stateSizeBytes), `snapshots[${i}].state`);
    for (const field of ['stateSizeBytes', 'persistedBytes', 'inFlightBytes']) {
      if (big(metrics?.[field]) > MAX_STATE_BYTES) p.push(`snapshots[${i}].metrics.${field} is above max_state_bytes`);
    }
    list(s.positions).forEach((pos, j) => {
      if (str(obj(pos)?.input) === '') p.push(`snapshots[${i}].positions[${j}].input is empty`);
    });
  });
}

function checkDeclines(p: Problems, value: Value | undefined): void {
  const declines = list(value).map((d) => obj(d) ?? {});
  declines.forEach((d, i) => {
    checkId(p, d.taskId, `declines[${i}].task_id`);
    checkText(p, d.message, MAX_MESSAGE_TEXT_BYTES, `declines[${i}].message`);
  });
}

function checkPolicy(p: Problems, policy: Message | undefined): void {
  if (policy === undefined) return;
  for (const field of ['intervalMs', 'minPauseMs', 'timeoutMs', 'snapshotTimeoutMs', 'taskStallTimeoutMs']) {
    if (big(policy[field]) > MAX_POLICY_DURATION_MS) p.push(`policy.${field} is above 7 days`);
  }
  const interval = big(policy.intervalMs);
  if (interval > 0n && interval < 10n) p.push('policy.interval_ms is below 10');
  const n = (field: string): number => (typeof policy[field] === 'number' ? policy[field] : 0);
  if (n('maxConcurrent') > 16) p.push('policy.max_concurrent is above 16');
  if (n('retained') > 100) p.push('policy.retained is above 100');
  if (n('tolerableFailures') < -1 || n('tolerableFailures') > 1_000_000)
    p.push('policy.tolerable_failures is out of range');
  if (n('fullEvery') > 1_000_000) p.push('policy.full_every is above 1000000');
  checkEnum(p, policy.mode, 3, 'policy.mode');
  checkEnum(p, policy.compression, 3, 'policy.compression');
  checkAdaptive(p, obj(policy.adaptive), interval);
}

function checkAdaptive(p: Problems, adaptive: Message | undefined, interval: bigint): void {
  if (adaptive === undefined) return;
  if (interval === 0n) p.push('policy.adaptive needs interval_ms above 0');
  for (const field of ['minIntervalMs', 'maxIntervalMs', 'replayTargetMs']) {
    if (big(adaptive[field]) > MAX_POLICY_DURATION_MS) p.push(`policy.adaptive.${field} is above 7 days`);
  }
  const min = big(adaptive.minIntervalMs);
  const max = big(adaptive.maxIntervalMs);
  if (min > 0n && min < 10n) p.push('policy.adaptive.min_interval_ms is below 10');
  if (max > 0n && max < (min === 0n ? 10n : min)) p.push('policy.adaptive.max_interval_ms is below min_interval_ms');
  if (big(adaptive.budgetPermille) > 1000n) p.push('policy.adaptive.budget_permille is above 1000');
}

function checkSpec(p: Problems, spec: Message | undefined): void {
  if (spec === undefined) {
    p.push('spec is missing');
    return;
  }
  checkId(p, spec.jobId, 'spec.job_id');
  const tasks = list(spec.tasks).map((t) => obj(t) ?? {});
  if (tasks.length === 0) p.push('spec.tasks is empty');
  const ids = tasks.map((t) => str(t.taskId));
  checkDistinct(p, ids, 'spec.tasks');
  const known = new Set(ids);
  tasks.forEach((t, i) => {
    checkId(p, t.taskId, `spec.tasks[${i}].task_id`);
    const inputs = list(t.inputs).map(str);
    if (inputs.some((input) => !known.has(input) || input === t.taskId)) p.push(`spec.tasks[${i}] has a bad input`);
    checkDistinct(p, inputs, `spec.tasks[${i}].inputs`);
    checkLabels(p, t.labels, `spec.tasks[${i}].labels`);
  });
  if (hasCycle(tasks)) p.push('spec.tasks inputs form a cycle');
  checkLabels(p, spec.labels, 'spec.labels');
  checkPolicy(p, obj(spec.policy));
}

function hasCycle(tasks: Message[]): boolean {
  const inputs = new Map(tasks.map((t) => [str(t.taskId), list(t.inputs).map(str)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string): boolean => {
    if (state.get(id) === 'done') return false;
    if (state.get(id) === 'visiting') return true;
    state.set(id, 'visiting');
    const cyclic = (inputs.get(id) ?? []).some((i) => inputs.has(i) && visit(i));
    state.set(id, 'done');
    return cyclic;
  };
  return [...inputs.keys()].some(visit);
}

/** Why the contract refuses a unary or server-streaming request; empty when it allows it. */
export function requestProblems(method: string, m: Message): string[] {
  const p: Problems = [];
  checkNumbers(p, m, '');
  switch (method) {
    case 'SubmitJob':
      checkSpec(p, obj(m.spec));
      break;
    // worker_id may be left empty: the session token names the worker.
    case 'AcknowledgeCheckpoint':
      checkId(p, m.jobId, 'job_id');
      if (str(m.workerId) !== '') checkWorkerId(p, m.workerId, 'worker_id');
      checkSnapshots(p, m.snapshots);
      break;
    case 'DeclineCheckpoint':
      checkId(p, m.jobId, 'job_id');
      if (str(m.workerId) !== '') checkWorkerId(p, m.workerId, 'worker_id');
      checkDeclines(p, m.declines);
      break;
    case 'TriggerCheckpoint':
      checkId(p, m.jobId, 'job_id');
      checkEnum(p, m.snapshotType, 2, 'snapshot_type');
      break;
    case 'WatchCheckpoints':
      if (str(m.jobId) !== '') checkId(p, m.jobId, 'job_id');
      break;
    case 'ListJobs':
      break;
    default:
      checkId(p, m.jobId, 'job_id');
  }
  return distinct(p);
}

/** Where in a session a fuzzed Attach message is sent. */
export type AttachMode = 'first' | 'session' | 'standby';

/** The session messages, in the order the coordinator looks for them. */
const SESSION_BODIES = ['heartbeat', 'ready', 'failure', 'acknowledge', 'decline', 'stateListing'] as const;

function present(m: Message, field: string): boolean {
  return m[field] !== null && m[field] !== undefined;
}

/**
 * The body the coordinator acts on (protobuf.js keeps every member of a
 * oneof that was on the wire): a first message is a hello when it has
 * one; later ones are the first session message present, else a hello.
 */
export function effectiveBody(mode: AttachMode, m: Message): string {
  if (mode === 'first' && present(m, 'hello')) return 'hello';
  return SESSION_BODIES.find((b) => present(m, b)) ?? (present(m, 'hello') ? 'hello' : '');
}

/** Why the contract refuses an Attach message sent in `mode`; empty when it allows it. */
export function attachProblems(mode: AttachMode, m: Message): string[] {
  const p: Problems = [];
  const body = effectiveBody(mode, m);
  checkNumbers(p, body === '' ? m : { [body]: m[body] ?? null }, '');
  if (body === '') p.push('the message has no body');
  const bodies = ['hello', ...SESSION_BODIES].filter((b) => present(m, b));
  if (bodies.length > 1) p.push(`the message has several bodies: ${bodies.join(', ')}`);
  if (mode === 'first' && body !== 'hello' && body !== '') p.push(`a session starts with a hello, not ${body}`);
  if (mode === 'session' && body === 'hello') p.push('a session has one hello');
  if (mode === 'standby' && body !== 'heartbeat' && body !== '') p.push(`a standby sends only heartbeats, not ${body}`);
  const inner = obj(m[body]) ?? {};
  switch (body) {
    case 'hello':
      checkWorkerId(p, inner.workerId, 'hello.worker_id');
      checkId(p, inner.jobId, 'hello.job_id');
      if (list(inner.taskIds).length === 0) p.push('hello.task_ids is empty');
      list(inner.taskIds).forEach((id, i) => checkId(p, id, `hello.task_ids[${i}]`));
      checkDistinct(p, list(inner.taskIds).map(str), 'hello.task_ids');
      checkLabels(p, inner.labels, 'hello.labels');
      break;
    case 'heartbeat':
      list(inner.tasks).forEach((h, i) => checkId(p, obj(h)?.taskId, `heartbeat.tasks[${i}].task_id`));
      break;
    case 'ready':
      list(inner.taskIds).forEach((id, i) => checkId(p, id, `ready.task_ids[${i}]`));
      break;
    case 'failure':
      checkId(p, inner.taskId, 'failure.task_id');
      checkText(p, inner.message, MAX_MESSAGE_TEXT_BYTES, 'failure.message');
      break;
    case 'acknowledge':
      checkSnapshots(p, inner.snapshots);
      break;
    case 'decline':
      checkDeclines(p, inner.declines);
      break;
    // A state listing is judged piece by piece; a bad one is logged, never refused.
    case 'stateListing':
      break;
  }
  return distinct(p);
}
