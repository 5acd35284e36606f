/**
 * A worker's subscriptions to its job's control subjects: triggers for its
 * sources and the `complete`, `abort` and `recover` broadcasts, decoded.
 * Messages of a lower leader term than the highest seen come from a
 * deposed coordinator and are dropped.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import { controlMessageCodecs, LeaderTerms, type JobSubjects } from '../bus/index.js';
import type { CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../gen/ckpt/v1/Recover.js';
import type { Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import type { Logger } from '../log/index.js';

/** Handlers of the decoded control messages. */
export interface ControlHandlers {
  trigger: (message: Trigger__Output) => void;
  complete: (message: CheckpointComplete__Output) => void;
  abort: (message: CheckpointAbort__Output) => void;
  recover: (message: Recover__Output) => void;
}

/**
 * Subscribes to the control subjects (the trigger subject only when
 * `triggers`) and resolves once the server has registered them. Returns
 * the function that unsubscribes them all. Messages that do not decode are
 * logged and dropped, and so are messages whose term is lower than the
 * highest in `terms` (pass the session's, so that a welcome from a new
 * leader counts too; default: the terms of these subscriptions alone).
 */
export async function subscribeControl(
  nc: NatsConnection,
  subjects: JobSubjects,
  handlers: ControlHandlers,
  triggers: boolean,
  logger: Logger,
  terms: LeaderTerms = new LeaderTerms(),
): Promise<() => void> {
  const codecs = controlMessageCodecs();
  const subs: Subscription[] = [];
  const on = <T extends { term: number }>(
    subject: string,
    decode: (bytes: Uint8Array) => T,
    handle: (message: T) => void,
  ): void => {
    const callback = (err: Error | null, msg: Msg): void => {
      if (err !== null) {
        logger.warn({ err, subject }, 'control subscription failed');
        return;
      }
      let message: T;
      try {
        message = decode(msg.data);
      } catch (error) {
        logger.warn({ err: error, subject }, 'undecodable control message dropped');
        return;
      }
      if (!terms.admit(message.term)) {
        logger.debug(
          { subject, term: message.term, highest: terms.highest },
          'control message of a deposed leader dropped',
        );
        return;
      }
      handle(message);
    };
    subs.push(nc.subscribe(subject, { callback }));
  };
  if (triggers) on(subjects.trigger, (b) => codecs.trigger.decode(b), handlers.trigger);
  on(subjects.complete, (b) => codecs.complete.decode(b), handlers.complete);
  on(subjects.abort, (b) => codecs.abort.decode(b), handlers.abort);
  on(subjects.recover, (b) => codecs.recover.decode(b), handlers.recover);
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}
