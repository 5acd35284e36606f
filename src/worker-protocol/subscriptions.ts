/**
 * A worker's NATS subscriptions: the control subjects of its job (triggers,
 * which its sources take and its tasks time their start delay from, and
 * the `complete`, `abort` and `recover` broadcasts) and
 * the data subjects of the edges its tasks read. Control messages go to the
 * worker's `ControlIntake`, which checks every one against what the session
 * confirmed; no callback can throw into the NATS connection's reader.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  CONTROL_KINDS,
  edgeOfSubject,
  guardedCallback,
  type ControlIntake,
  type Edge,
  type JobSubjects,
} from '../bus/index.js';

/**
 * Above this many input edges, a worker subscribes once per reading task
 * (`<cp>.data.*.<task>`) instead of once per edge; above this many reading
 * tasks, once for all edges of the job (`<cp>.data.*.*`), dropping what its
 * tasks do not read. Each subscription costs the server and the client
 * memory and a round of interest propagation; a wildcard costs a subject
 * parse per message instead.
 */
export const DATA_WILDCARD_THRESHOLD = 64;

/**
 * Receives one message of an edge a local task reads; `edge` is the same
 * object for every message of one edge (handlers key counts by it).
 */
export type EdgeHandler = (edge: Edge, msg: Msg) => void;

/** Hears a subscription error (`msg` undefined) or what a handler threw. */
export type SubscriptionErrorHandler = (err: unknown, subject: string, msg: Msg | undefined) => void;

/**
 * Subscribes to the control subjects (the trigger subject only when
 * `triggers`) and resolves once the server has registered them. Returns
 * the function that unsubscribes them all. `onError` hears subscription
 * errors (a permission violation, say).
 */
export async function subscribeControl(
  nc: NatsConnection,
  subjects: JobSubjects,
  intake: Pick<ControlIntake, 'receive'>,
  triggers: boolean,
  onError: SubscriptionErrorHandler,
): Promise<() => void> {
  const subs: Subscription[] = [];
  for (const kind of CONTROL_KINDS) {
    if (kind === 'trigger' && !triggers) continue;
    const subject = subjects[kind];
    const callback = guardedCallback(
      (msg) => intake.receive(kind, msg.data),
      (err, msg) => onError(err, subject, msg),
    );
    subs.push(nc.subscribe(subject, { callback }));
  }
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}

/**
 * The subjects that deliver every input edge of the local `readers` (task
 * → its inputs): one per edge, or wildcards (see `DATA_WILDCARD_THRESHOLD`).
 */
export function dataSubscriptions(subjects: JobSubjects, readers: ReadonlyMap<string, readonly string[]>): string[] {
  const edges = [...readers.values()].reduce((n, inputs) => n + inputs.length, 0);
  if (edges <= DATA_WILDCARD_THRESHOLD) {
    return [...readers].flatMap(([taskId, inputs]) => inputs.map((input) => subjects.edge(input, taskId)));
  }
  if (readers.size <= DATA_WILDCARD_THRESHOLD) return [...readers.keys()].map((taskId) => subjects.inputs(taskId));
  return [subjects.allEdges];
}

/**
 * Subscribes to every input edge of `readers` and resolves once the server
 * has registered them. `handle` hears only edges of the graph a local task
 * reads: what a wildcard delivers from elsewhere (a task that is no input,
 * a subject that is no edge) is dropped. Returns the function that
 * unsubscribes them all.
 */
export async function subscribeData(
  nc: NatsConnection,
  subjects: JobSubjects,
  readers: ReadonlyMap<string, readonly string[]>,
  handle: EdgeHandler,
  onError: SubscriptionErrorHandler,
): Promise<() => void> {
  const subs: Subscription[] = [];
  const wanted = wantedEdges(readers);
  const edgeOf = (subject: string): Edge | undefined => {
    const parsed = edgeOfSubject(subjects.prefix, subject);
    return parsed === undefined ? undefined : wanted.get(parsed.to)?.get(parsed.from);
  };
  for (const subject of dataSubscriptions(subjects, readers)) {
    const exact = edgeOf(subject);
    const deliver =
      exact === undefined
        ? (msg: Msg): void => {
            const edge = edgeOf(msg.subject);
            if (edge !== undefined) handle(edge, msg);
          }
        : (msg: Msg): void => handle(exact, msg);
    const callback = guardedCallback(deliver, (err, msg) => onError(err, subject, msg));
    subs.push(nc.subscribe(subject, { callback }));
  }
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}

/** Every input edge of `readers`, one object per edge, by reader and input. */
function wantedEdges(readers: ReadonlyMap<string, readonly string[]>): Map<string, Map<string, Edge>> {
  return new Map(
    [...readers].map(([to, inputs]) => [to, new Map(inputs.map((from): [string, Edge] => [from, { from, to }]))]),
  );
}
