/**
 * Records on the data subjects: the user's payload with the epoch and,
 * when given, the partitioning key in headers.
 */
import { headers as natsHeaders, type Msg, type MsgHdrs } from '@nats-io/nats-core';
import { EPOCH_HEADER } from '../bus/index.js';
import type { DataRecord } from './task.js';

/** Header with a record's partitioning key, percent-encoded (so any string is a valid header value). */
export const KEY_HEADER = 'ckpt-key';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A `DataRecord` for `value` from task `from`. */
export function dataRecord(value: Uint8Array, from: string, key?: string): DataRecord {
  return { value, key, from, text: () => decoder.decode(value) };
}

/** The record a data message carries. */
export function recordOfMessage(msg: Msg, from: string): DataRecord {
  const raw = msg.headers?.get(KEY_HEADER);
  return dataRecord(msg.data, from, raw === undefined || raw === '' ? undefined : decodeKey(raw));
}

/** The payload bytes of `value` (UTF-8 for strings). */
export function payloadBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

/** Headers of a record of `epoch`, with its key when given. */
export function recordHeaders(epoch: number, key?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(EPOCH_HEADER, String(epoch));
  if (key !== undefined) h.set(KEY_HEADER, encodeURIComponent(key));
  return h;
}

function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
