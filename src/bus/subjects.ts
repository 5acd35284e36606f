/**
 * The NATS subject scheme of the barrier plane (see `proto/ckpt/v1/bus.proto`).
 * Pure functions, so that the coordinator, workers, tests and the CLI build
 * exactly the same subjects.
 *
 * With `<p>` the subject prefix and `<job>` the job id:
 *   <p>.<job>.trigger | complete | abort | recover   control messages
 *   <p>.<job>.data.<from>.<to>                       records and barriers of one edge
 *   <p>.<job>.credit.<from>.<to>                     the reader's credits for one edge (flow control)
 * `<p>.<job>` is the job's control prefix, which the coordinator sends to
 * workers in their welcome.
 *
 * Every edge of the job graph is its own subject: a reader's subscription
 * is then one FIFO channel per input, which barrier alignment needs, and a
 * record partitioned by key goes only to the task it is meant for.
 */
import { CkptError } from '../core/errors.js';

/** The default subject prefix of the barrier plane. */
export const DEFAULT_SUBJECT_PREFIX = 'ckpt';

/** The control subjects of a job, by the message each carries. */
export type ControlKind = 'trigger' | 'complete' | 'abort' | 'recover';

/** Every control kind, in protocol order. */
export const CONTROL_KINDS: readonly ControlKind[] = ['trigger', 'complete', 'abort', 'recover'];

/** The token between the control prefix and the edge on data subjects. */
export const DATA_TOKEN = 'data';

/** The token between the control prefix and the edge on credit subjects. */
export const CREDIT_TOKEN = 'credit';

/**
 * A subject token ckpt accepts: 1-128 characters of `[A-Za-z0-9_-]`. This is
 * the id alphabet of job and task ids, and a strict subset of what NATS
 * allows, so no id can inject a `.`, a wildcard or whitespace.
 */
export const SUBJECT_TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

/** True when `token` is one valid subject token (see `SUBJECT_TOKEN_PATTERN`). */
export function isSubjectToken(token: string): boolean {
  return SUBJECT_TOKEN_PATTERN.test(token);
}

/** True when `prefix` is one or more valid tokens joined by dots. */
export function isSubjectPrefix(prefix: string): boolean {
  return prefix.length > 0 && prefix.length <= 256 && prefix.split('.').every(isSubjectToken);
}

/**
 * Throws `CkptError('MALFORMED')` naming `what` unless `token` is a valid
 * subject token; returns it otherwise.
 */
export function assertSubjectToken(token: string, what: string): string {
  if (!isSubjectToken(token)) {
    throw new CkptError('MALFORMED', `${what} ${JSON.stringify(token)} is not 1-128 characters of [A-Za-z0-9_-]`);
  }
  return token;
}

/** Throws `CkptError('MALFORMED')` naming `what` unless `prefix` is a valid subject prefix. */
export function assertSubjectPrefix(prefix: string, what: string): string {
  if (!isSubjectPrefix(prefix)) {
    throw new CkptError('MALFORMED', `${what} ${JSON.stringify(prefix)} is not dot-separated tokens of [A-Za-z0-9_-]`);
  }
  return prefix;
}

/** `<subjectPrefix>.<jobId>`: the job's control prefix. Validates both parts. */
export function controlPrefix(subjectPrefix: string, jobId: string): string {
  assertSubjectPrefix(subjectPrefix, 'subject prefix');
  assertSubjectToken(jobId, 'job id');
  return `${subjectPrefix}.${jobId}`;
}

/** `<controlPrefix>.<kind>`: where the coordinator publishes one kind of control message. */
export function controlSubject(jobControlPrefix: string, kind: ControlKind): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  return `${jobControlPrefix}.${kind}`;
}

/** One edge of the job graph: records and barriers flow from `from` to `to`. */
export interface Edge {
  /** The producing task. */
  from: string;
  /** The consuming task. */
  to: string;
}

/**
 * `<controlPrefix>.data.<from>.<to>`: where task `from` publishes its
 * records and barriers for task `to`. Validates every part.
 */
export function edgeSubject(jobControlPrefix: string, from: string, to: string): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  assertSubjectToken(from, 'task id');
  assertSubjectToken(to, 'task id');
  return `${jobControlPrefix}.${DATA_TOKEN}.${from}.${to}`;
}

/**
 * `<controlPrefix>.data.*.<taskId>`: matches the edge subjects of every
 * input of one task, for a reader that subscribes once instead of once per
 * input.
 */
export function inputSubjectsOf(jobControlPrefix: string, taskId: string): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  assertSubjectToken(taskId, 'task id');
  return `${jobControlPrefix}.${DATA_TOKEN}.*.${taskId}`;
}

/** `<controlPrefix>.data.*.*`: matches the edge subjects of every edge of the job. */
export function allEdgeSubjects(jobControlPrefix: string): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  return `${jobControlPrefix}.${DATA_TOKEN}.*.*`;
}

/**
 * `<controlPrefix>.credit.<from>.<to>`: where task `to`, the reader of edge
 * `from` → `to`, publishes its credits for the edge (see `credit.ts`).
 * Validates every part.
 */
export function creditSubject(jobControlPrefix: string, from: string, to: string): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  assertSubjectToken(from, 'task id');
  assertSubjectToken(to, 'task id');
  return `${jobControlPrefix}.${CREDIT_TOKEN}.${from}.${to}`;
}

/** `<controlPrefix>.credit.<from>.*`: the credits of every output edge of task `from`. */
export function outputCreditSubjectsOf(jobControlPrefix: string, from: string): string {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  assertSubjectToken(from, 'task id');
  return `${jobControlPrefix}.${CREDIT_TOKEN}.${from}.*`;
}

/**
 * The edge of a credit subject under `jobControlPrefix`, or undefined when
 * the subject is not a credit subject of that prefix.
 */
export function edgeOfCreditSubject(jobControlPrefix: string, subject: string): Edge | undefined {
  return edgeUnder(`${jobControlPrefix}.${CREDIT_TOKEN}.`, subject);
}

/**
 * The edge of a data subject under `jobControlPrefix`, or undefined when
 * the subject is not an edge subject of that prefix.
 */
export function edgeOfSubject(jobControlPrefix: string, subject: string): Edge | undefined {
  return edgeUnder(`${jobControlPrefix}.${DATA_TOKEN}.`, subject);
}

function edgeUnder(head: string, subject: string): Edge | undefined {
  if (!subject.startsWith(head)) return undefined;
  const parts = subject.slice(head.length).split('.');
  if (parts.length !== 2) return undefined;
  const [from, to] = parts as [string, string];
  return isSubjectToken(from) && isSubjectToken(to) ? { from, to } : undefined;
}

/** Every subject of one job, built once. */
export interface JobSubjects {
  /** `<p>.<job>` */
  readonly prefix: string;
  readonly trigger: string;
  readonly complete: string;
  readonly abort: string;
  readonly recover: string;
  /** `<p>.<job>.data.*.*`: every edge of the job. */
  readonly allEdges: string;
  /** `<p>.<job>.credit.*.*`: the credits of every edge of the job. */
  readonly allCredits: string;
  /** `<p>.<job>.data.<from>.<to>` */
  edge(from: string, to: string): string;
  /** `<p>.<job>.data.*.<taskId>`: every input edge of `taskId`. */
  inputs(taskId: string): string;
  /** `<p>.<job>.credit.<from>.<to>` */
  credit(from: string, to: string): string;
  /** `<p>.<job>.credit.<from>.*`: the credits of every output edge of `from`. */
  outputCredits(from: string): string;
}

/** The subjects of a job from its control prefix (as a welcome names it). */
export function jobSubjects(jobControlPrefix: string): JobSubjects {
  assertSubjectPrefix(jobControlPrefix, 'control prefix');
  return {
    prefix: jobControlPrefix,
    trigger: `${jobControlPrefix}.trigger`,
    complete: `${jobControlPrefix}.complete`,
    abort: `${jobControlPrefix}.abort`,
    recover: `${jobControlPrefix}.recover`,
    allEdges: `${jobControlPrefix}.${DATA_TOKEN}.*.*`,
    allCredits: `${jobControlPrefix}.${CREDIT_TOKEN}.*.*`,
    edge: (from, to) => edgeSubject(jobControlPrefix, from, to),
    inputs: (taskId) => inputSubjectsOf(jobControlPrefix, taskId),
    credit: (from, to) => creditSubject(jobControlPrefix, from, to),
    outputCredits: (from) => outputCreditSubjectsOf(jobControlPrefix, from),
  };
}

/**
 * The inbox prefix a worker of `jobId` connects to NATS with (the SDK's
 * default): its request replies arrive on `_INBOX_<job>.>`, where a
 * deployment's permissions let only that job's user listen.
 */
export function workerInboxPrefix(jobId: string): string {
  return `_INBOX_${assertSubjectToken(jobId, 'job id')}`;
}
