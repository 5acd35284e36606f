/**
 * The NATS subscriptions of a simulated worker: one trigger subscription
 * shared by all its sources, the three broadcasts, and the edge subjects
 * its readers consume.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { edgeOfSubject, guardedCallback, type Edge, type JobSubjects, type MsgCallback } from '../../src/bus/index.js';
import type { Logger } from '../../src/log/index.js';
import type { WorkerTopology } from './topology.js';

/**
 * Above this many input edges, a worker subscribes once per reading task
 * (`<cp>.data.*.<task>`) instead of once per edge; above this many reading
 * tasks, once for all edges of the job (`<cp>.data.*.*`), dropping what its
 * tasks do not read.
 */
export const DATA_WILDCARD_THRESHOLD = 64;

/** Handlers of the messages a worker receives. */
export interface SubscriptionHandlers {
  trigger: (msg: Msg) => void;
  complete: (msg: Msg) => void;
  abort: (msg: Msg) => void;
  recover: (msg: Msg) => void;
  /** A record or barrier on `edge`, whose reader `edge.to` is a local task. */
  data: (msg: Msg, edge: Edge) => void;
}

/**
 * Subscribes on `subjects` and resolves once the server has registered
 * every subscription. Returns the function that unsubscribes them all.
 */
export async function subscribeWorker(
  nc: NatsConnection,
  subjects: JobSubjects,
  topology: WorkerTopology,
  handlers: SubscriptionHandlers,
  logger: Logger,
): Promise<() => void> {
  const subs: Subscription[] = [];
  const on = (subject: string, handle: (msg: Msg) => void): void => {
    subs.push(nc.subscribe(subject, { callback: guarded(subject, handle, logger) }));
  };
  if (topology.sources.length > 0) on(subjects.trigger, handlers.trigger);
  on(subjects.complete, handlers.complete);
  on(subjects.abort, handlers.abort);
  on(subjects.recover, handlers.recover);
  const dispatch = (msg: Msg): void => {
    const edge = edgeOfSubject(subjects.prefix, msg.subject);
    if (edge !== undefined && topology.inputsByTask.has(edge.to)) handlers.data(msg, edge);
  };
  for (const subject of dataSubscriptions(subjects, topology)) on(subject, dispatch);
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}

/** The subjects that deliver every input edge of the local readers (see `DATA_WILDCARD_THRESHOLD`). */
export function dataSubscriptions(subjects: JobSubjects, topology: WorkerTopology): string[] {
  const readers = [...topology.inputsByTask];
  const edges = readers.reduce((n, [, inputs]) => n + inputs.length, 0);
  if (edges <= DATA_WILDCARD_THRESHOLD) {
    return readers.flatMap(([taskId, inputs]) => inputs.map((input) => subjects.edge(input, taskId)));
  }
  if (readers.length <= DATA_WILDCARD_THRESHOLD) return readers.map(([taskId]) => subjects.inputs(taskId));
  return [subjects.allEdges];
}

/** A callback that never throws into NATS; failures are logged (handlers check and count what they drop). */
function guarded(subject: string, handle: (msg: Msg) => void, logger: Logger): MsgCallback {
  return guardedCallback(handle, (err, msg) => {
    if (msg === undefined) logger.warn({ err, subject }, 'subscription failed');
    else logger.debug({ err, subject: msg.subject }, 'message dropped');
  });
}
