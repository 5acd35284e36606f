/**
 * A worker's subscriptions to its job's control subjects: triggers for its
 * sources and the `complete`, `abort` and `recover` broadcasts. What
 * arrives goes to the worker's `ControlIntake`, which checks every message
 * against what the session confirmed; no callback can throw into the NATS
 * connection's reader.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { CONTROL_KINDS, guardedCallback, type ControlIntake, type JobSubjects } from '../bus/index.js';

/**
 * Subscribes to the control subjects (the trigger subject only when
 * `triggers`) and resolves once the server has registered them. Returns
 * the function that unsubscribes them all. `onError` hears subscription
 * errors (a permission violation, say).
 */
export async function subscribeControl(
  nc: NatsConnection,
  subjects: JobSubjects,
  intake: ControlIntake,
  triggers: boolean,
  onError: (err: unknown, subject: string) => void,
): Promise<() => void> {
  const subs: Subscription[] = [];
  for (const kind of CONTROL_KINDS) {
    if (kind === 'trigger' && !triggers) continue;
    const subject = subjects[kind];
    const callback = guardedCallback(
      (msg) => intake.receive(kind, msg.data),
      (err) => onError(err, subject),
    );
    subs.push(nc.subscribe(subject, { callback }));
  }
  await nc.flush();
  return () => {
    for (const sub of subs) sub.unsubscribe();
  };
}
