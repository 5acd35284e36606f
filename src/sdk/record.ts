/**
 * Records on the data subjects: the user's payload with the epoch and,
 * when given, the partitioning key in headers.
 */
import { MsgHdrsImpl, type Match, type Msg, type MsgHdrs } from '@nats-io/nats-core';
import { BARRIER_HEADER, EPOCH_HEADER } from '../bus/index.js';
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

/** What the headers of a message on a data subject say, as `Msg.headers.get` would read them. */
export interface DataHeaders {
  /** `ckpt-epoch`, or undefined when absent or not a number. */
  epoch: number | undefined;
  /** `ckpt-barrier` is `1`. */
  barrier: boolean;
  /** `ckpt-key`, percent-decoded; undefined when absent or empty. */
  key: string | undefined;
}

const NO_HEADERS: DataHeaders = { epoch: undefined, barrier: false, key: undefined };

/**
 * The ckpt headers of a data message. nats.js builds a full header object
 * for `msg.headers` (validating and canonicalizing every line, then
 * searching its keys at every `get`), which was a good part of the cost of
 * receiving a small record; this reads the three headers from the
 * message's header block in one pass, with nats.js's rules: the first line
 * is the status line, a line's key is what precedes its first `:` (exact
 * case), its value the rest, trimmed, and the first occurrence counts.
 * A message whose header block nats.js does not expose as expected is read
 * through `msg.headers`.
 */
export function dataHeadersOf(msg: Msg): DataHeaders {
  const block = headerBlock(msg);
  if (block === undefined) {
    const h = msg.headers;
    if (h === undefined) return NO_HEADERS;
    return headersFrom(h.get(EPOCH_HEADER), h.get(BARRIER_HEADER), h.get(KEY_HEADER));
  }
  if (block === null) return NO_HEADERS;
  const text = decoder.decode(block);
  let epoch: string | undefined;
  let barrier: string | undefined;
  let key: string | undefined;
  // Skip the status line.
  let at = text.indexOf('\r\n');
  while (at !== -1) {
    const start = at + 2;
    at = text.indexOf('\r\n', start);
    const end = at === -1 ? text.length : at;
    const colon = text.indexOf(':', start);
    if (colon === -1 || colon >= end) continue;
    const name = text.slice(start, colon);
    if (name === EPOCH_HEADER) epoch ??= text.slice(colon + 1, end).trim();
    else if (name === BARRIER_HEADER) barrier ??= text.slice(colon + 1, end).trim();
    else if (name === KEY_HEADER) key ??= text.slice(colon + 1, end).trim();
  }
  return headersFrom(epoch, barrier, key);
}

function headersFrom(epoch: string | undefined, barrier: string | undefined, key: string | undefined): DataHeaders {
  return {
    epoch: epoch === undefined || !/^\d{1,15}$/.test(epoch) ? undefined : Number(epoch),
    barrier: barrier === '1',
    key: key === undefined || key === '' ? undefined : decodeKey(key),
  };
}

/**
 * The raw header block of a message as nats.js's `MsgImpl` holds it (the
 * bytes before the payload, `_msg.hdr` of them); null when the message has
 * none; undefined when `msg` is not laid out that way (another nats.js).
 */
function headerBlock(msg: Msg): Uint8Array | null | undefined {
  const impl = msg as unknown as { _msg?: { hdr?: unknown }; _rdata?: unknown };
  const hdr = impl._msg?.hdr;
  const raw = impl._rdata;
  if (typeof hdr !== 'number' || !(raw instanceof Uint8Array) || hdr > raw.length) return undefined;
  return hdr < 0 ? null : raw.subarray(0, hdr);
}

/** The record a data message carries, `key` as `dataHeadersOf` read it. */
export function recordOfMessage(msg: Msg, from: string, key: string | undefined): DataRecord {
  return dataRecord(msg.data, from, key);
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
  // Most keys need no decoding.
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
