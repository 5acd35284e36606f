/**
 * Header names and functions for messages on the barrier plane. Records keep
 * the user's encoding; the headers carry the epoch and mark barriers, so a
 * consumer can tell them apart without decoding the payload.
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';

/** Header with the sender's epoch, in decimal, on every record, barrier and control message. */
export const EPOCH_HEADER = 'ckpt-epoch';

/** Header set to `1` on a barrier; absent on records. */
export const BARRIER_HEADER = 'ckpt-barrier';

/** Headers for a barrier of `epoch`. */
export function barrierHeaders(epoch: number): MsgHdrs {
  const h = natsHeaders();
  h.set(EPOCH_HEADER, String(epoch));
  h.set(BARRIER_HEADER, '1');
  return h;
}

/** Headers for a record or control message of `epoch`. */
export function epochHeaders(epoch: number): MsgHdrs {
  const h = natsHeaders();
  h.set(EPOCH_HEADER, String(epoch));
  return h;
}

/** True when the message headers mark a barrier. */
export function isBarrier(h: MsgHdrs | undefined): boolean {
  return h?.get(BARRIER_HEADER) === '1';
}

/** The epoch a message carries in its headers, or undefined when absent or not a number. */
export function epochOf(h: MsgHdrs | undefined): number | undefined {
  const raw = h?.get(EPOCH_HEADER);
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) return undefined;
  return Number(raw);
}
