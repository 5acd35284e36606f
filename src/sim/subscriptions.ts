/**
 * The NATS subscriptions of a simulated worker: one trigger subscription
 * shared by all its sources, the three broadcasts, and the data subjects
 * its readers consume.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { taskOfDataSubject, type JobSubjects } from '../bus/index.js';
import type { Logger } from '../log/index.js';
import type { WorkerTopology } from './topology.js';

/**
 * Above this many distinct inputs, a worker reads all data subjects of the
 * job with one wildcard subscription and drops what its tasks do not read.
 */
export const DATA_WILDCARD_THRESHOLD = 64;

/** Handlers of the messages a worker receives. */
export interface SubscriptionHandlers {
  trigger: (msg: Msg) => void;
  complete: (msg: Msg) => void;
  abort: (msg: Msg) => void;
  recover: (msg: Msg) => void;
  /** A record or barrier of `inputTaskId`. */
  data: (msg: Msg, inputTaskId: string) => void;
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
  const inputs = [...topology.readersByInput.keys()];
  const dispatch = (msg: Msg): void => {
    const input = taskOfDataSubject(subjects.prefix, msg.subject);
    if (input !== undefined && topology.readersByInput.has(input)) handlers.data(msg, input);
  };
  if (inputs.length > DATA_WILDCARD_THRESHOLD) on(subjects.allData, dispatch);
  else for (const input of inputs) on(subjects.data(input), dispatch);
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}

function guarded(subject: string, handle: (msg: Msg) => void, logger: Logger) {
  return (err: Error | null, msg: Msg): void => {
    if (err !== null) {
      logger.warn({ err, subject }, 'subscription failed');
      return;
    }
    try {
      handle(msg);
    } catch (error) {
      logger.warn({ err: error, subject: msg.subject }, 'message dropped');
    }
  };
}
