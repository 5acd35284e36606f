/**
 * Records on the data subjects: the user's payload with the epoch and,
 * when given, the partitioning key in headers.
 */
import { MsgHdrsImpl, type Match, type Msg, type MsgHdrs } from '@nats-io/nats-core';
import { EPOCH_HEADER } from '../bus/index.js';
import type { DataRecord } from './task.js';

/** Header with a record's partitioning key, percent-encoded (so any string is a valid header value). */
export const KEY_HEADER = 'ckpt-key';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A record as the runtime hands it to a task; one shared `text` instead of a closure per record. */
class ReceivedRecord implements DataRecord {
  readonly value: Uint8Array;
  readonly key: string | undefined;
  readonly from: string;

  constructor(value: Uint8Array, from: string, key: string | undefined) {
    this.value = value;
    this.key = key;
    this.from = from;
  }

  text(): string {
    return decoder.decode(this.value);
  }
}

/** A `DataRecord` for `value` from task `from`. */
export function dataRecord(value: Uint8Array, from: string, key?: string): DataRecord {
  return new ReceivedRecord(value, from, key);
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

/**
 * Headers that are built once and published with many records: encoded at
 * the first publication instead of at every one. A change drops the
 * encoding.
 */
class ReusableHeaders extends MsgHdrsImpl {
  #encoded: Uint8Array | undefined;

  override set(k: string, v: string, match?: Match): void {
    this.#encoded = undefined;
    super.set(k, v, match);
  }

  override append(k: string, v: string, match?: Match): void {
    this.#encoded = undefined;
    super.append(k, v, match);
  }

  override delete(k: string, match?: Match): void {
    this.#encoded = undefined;
    super.delete(k, match);
  }

  override encode(): Uint8Array {
    this.#encoded ??= super.encode();
    return this.#encoded;
  }
}

/** Headers of a record of `epoch`, with its key when given; meant to be reused for every such record. */
export function recordHeaders(epoch: number, key?: string): MsgHdrs {
  const h = new ReusableHeaders();
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
