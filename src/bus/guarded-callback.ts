/**
 * Subscription callbacks that never throw. nats.js (v3) calls a
 * subscription's callback inside the loop that reads the connection: an
 * exception there ends that loop, and with it every delivery on the
 * connection, while the connection still looks open. Every callback of a
 * ckpt component goes through `guardedCallback`.
 */
import type { Msg } from '@nats-io/nats-core';

/** A NATS subscription callback. */
export type MsgCallback = (err: Error | null, msg: Msg) => void;

/**
 * Wraps `handle` so that nothing escapes: a subscription error and anything
 * `handle` throws go to `onError` (`msg` is undefined for a subscription
 * error), and anything `onError` throws is swallowed.
 */
export function guardedCallback(
  handle: (msg: Msg) => void,
  onError: (err: unknown, msg: Msg | undefined) => void,
): MsgCallback {
  return (err, msg) => {
    try {
      if (err !== null) onError(err, undefined);
      else handle(msg);
    } catch (error) {
      try {
        onError(error, msg);
      } catch {
        // Nothing may reach the connection's reader loop.
      }
    }
  };
}
