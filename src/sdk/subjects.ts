/**
 * The data subjects of the worker SDK: every edge of the job graph is its own
 * NATS subject, so that a task publishes each record only to the
 * downstream task it is meant for and a reader's subscription delivers
 * exactly one input.
 *
 * With `<cp>` the job's control prefix (`<p>.<job>`, from the welcome):
 *   <cp>.data.<from>.<to>   records and barriers from task `from` to task `to`
 */
import { assertSubjectPrefix, assertSubjectToken, DATA_TOKEN, isSubjectToken } from '../bus/index.js';

/** One edge of the job graph. */
export interface Edge {
  /** The producing task. */
  from: string;
  /** The consuming task. */
  to: string;
}

/** `<controlPrefix>.data.<from>.<to>`: the subject of one edge. Validates every part. */
export function edgeSubject(controlPrefix: string, from: string, to: string): string {
  assertSubjectPrefix(controlPrefix, 'control prefix');
  assertSubjectToken(from, 'task id');
  assertSubjectToken(to, 'task id');
  return `${controlPrefix}.${DATA_TOKEN}.${from}.${to}`;
}

/**
 * The edge of a data subject under `controlPrefix`, or undefined when the
 * subject is not an edge subject of that prefix.
 */
export function taskOfEdgeSubject(controlPrefix: string, subject: string): Edge | undefined {
  const head = `${controlPrefix}.${DATA_TOKEN}.`;
  if (!subject.startsWith(head)) return undefined;
  const parts = subject.slice(head.length).split('.');
  if (parts.length !== 2) return undefined;
  const [from, to] = parts as [string, string];
  return isSubjectToken(from) && isSubjectToken(to) ? { from, to } : undefined;
}
