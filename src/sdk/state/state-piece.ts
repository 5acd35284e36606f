/**
 * The bytes of one piece of a task's keyed state: a full piece holds every
 * entry, a delta piece the entries set or deleted since the checkpoint it
 * builds on. Each entry carries its key group, so that a task restoring a
 * different range of groups (the operator was rescaled) keeps only its own.
 *
 * Encoding (big-endian): "CKP1", u8 kind (0 full, 1 delta), u16 number of
 * key groups, u16 first and u16 end (excluded) group of the writer's range,
 * u32 entry count, then per entry: u16 key group, u8 operation (1 put,
 * 2 delete), u32 key length, the key (UTF-8), and for a put u32 value
 * length and the value (UTF-8 canonical JSON).
 */
import { CkptError } from '../../core/errors.js';
import type { KeyGroupRange } from '../../core/key-groups.js';
import type { JsonValue } from './keyed-state.js';

/** Whether a piece holds the whole state or the changes since the one it builds on. */
export type PieceKind = 'full' | 'delta';

/** One entry of a piece: a key set to a value (`json`, encoded), or deleted. */
export interface PieceEntry {
  group: number;
  key: string;
  /** The value as canonical JSON (a string, or its UTF-8 bytes as read from a piece); undefined for a delete. */
  json: string | Uint8Array | undefined;
}

/**
 * The piece restored string values are held in: `loaded` counts the bytes
 * of the values a state took from it unread (`LazyString`), `live` those it
 * still holds unread, so that the state can tell when the piece is kept in
 * memory mostly for values it no longer has.
 */
export interface PieceHold {
  loaded: number;
  live: number;
}

/**
 * A string value left in the piece it was read from, decoded when it is
 * first read: restoring a large state then takes no copy of every value
 * into the JS heap. Only strings without escapes are left so (their bytes
 * between the quotes are the string's UTF-8).
 */
export class LazyString {
  constructor(
    /** The piece. */
    readonly piece: Buffer,
    /** Where the value's JSON (quotes included) starts and ends in the piece. */
    readonly start: number,
    readonly end: number,
    readonly hold: PieceHold,
  ) {}

  /** Bytes of the value's JSON encoding. */
  get jsonBytes(): number {
    return this.end - this.start;
  }

  /** The string. */
  decode(): string {
    return this.piece.toString('utf8', this.start + 1, this.end - 1);
  }

  /** The value's JSON encoding, as stored (a view into the piece). */
  json(): Uint8Array {
    return this.piece.subarray(this.start, this.end);
  }
}

/** Escape-free string values at least this long (JSON bytes) are read as `LazyString`s when asked. */
export const LAZY_STRING_MIN_BYTES = 32;

/** What a piece says of itself. */
export interface PieceHeader {
  kind: PieceKind;
  keyGroups: number;
  /** The key groups of the task that wrote it. */
  range: KeyGroupRange;
  entries: number;
}

const MAGIC = Buffer.from('CKP1', 'latin1');
const HEADER_BYTES = 15;
const PUT = 1;
const DELETE = 2;

/** Bytes an entry takes in a piece besides its key and value. */
export const ENTRY_OVERHEAD_BYTES = 11;

/** True when `bytes` start like a piece (and not like the JSON encoding of earlier versions). */
export function isStatePiece(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Encodes a piece. `entries` is read once; `byteLength` of each key and
 * value must be known up front, so they are measured in a first pass.
 */
export function encodeStatePiece(header: Omit<PieceHeader, 'entries'>, entries: readonly PieceEntry[]): Buffer {
  let size = HEADER_BYTES;
  const lengths = new Array<number>(entries.length * 2);
  entries.forEach((e, i) => {
    const keyBytes = Buffer.byteLength(e.key);
    const valueBytes =
      e.json === undefined ? 0 : typeof e.json === 'string' ? Buffer.byteLength(e.json) : e.json.length;
    lengths[i * 2] = keyBytes;
    lengths[i * 2 + 1] = valueBytes;
    size += 7 + keyBytes + (e.json === undefined ? 0 : 4 + valueBytes);
  });
  const out = Buffer.allocUnsafe(size);
  MAGIC.copy(out, 0);
  out.writeUInt8(header.kind === 'full' ? 0 : 1, 4);
  out.writeUInt16BE(header.keyGroups, 5);
  out.writeUInt16BE(header.range.start, 7);
  out.writeUInt16BE(header.range.end, 9);
  out.writeUInt32BE(entries.length, 11);
  let at = HEADER_BYTES;
  entries.forEach((e, i) => {
    const keyBytes = lengths[i * 2] as number;
    out.writeUInt16BE(e.group, at);
    out.writeUInt8(e.json === undefined ? DELETE : PUT, at + 2);
    out.writeUInt32BE(keyBytes, at + 3);
    at += 7 + out.write(e.key, at + 7, keyBytes, 'utf8');
    if (e.json !== undefined) {
      const valueBytes = lengths[i * 2 + 1] as number;
      out.writeUInt32BE(valueBytes, at);
      if (typeof e.json === 'string') at += 4 + out.write(e.json, at + 4, valueBytes, 'utf8');
      else {
        out.set(e.json, at + 4);
        at += 4 + valueBytes;
      }
    }
  });
  return out;
}

/** Reads a piece's header; throws MALFORMED for anything that is not one. */
export function readPieceHeader(bytes: Uint8Array): PieceHeader {
  if (!isStatePiece(bytes) || bytes.length < HEADER_BYTES) malformed('it has no piece header');
  const buf = asBuffer(bytes);
  const kindByte = buf.readUInt8(4);
  if (kindByte > 1) malformed(`its kind is ${kindByte}`);
  const keyGroups = buf.readUInt16BE(5);
  const range = { start: buf.readUInt16BE(7), end: buf.readUInt16BE(9) };
  if (keyGroups === 0 || range.start >= range.end || range.end > keyGroups) {
    malformed(`its key groups ${range.start}-${range.end} of ${keyGroups} are not a range`);
  }
  return { kind: kindByte === 0 ? 'full' : 'delta', keyGroups, range, entries: buf.readUInt32BE(11) };
}

/**
 * Calls `apply` for each entry of the piece in order, with the value
 * parsed and the bytes the entry takes; throws MALFORMED when the piece is
 * truncated, has trailing bytes, a group outside its key groups or a value
 * that is not JSON. With `lazy`, long string values without escapes are
 * passed as `LazyString`s holding on to the piece.
 */
export function readPieceEntries(
  bytes: Uint8Array,
  apply: (group: number, key: string, value: JsonValue | undefined, entryBytes: number) => void,
): PieceHeader;
export function readPieceEntries(
  bytes: Uint8Array,
  apply: (group: number, key: string, value: JsonValue | LazyString | undefined, entryBytes: number) => void,
  options: { lazy: true },
): PieceHeader;
export function readPieceEntries(
  bytes: Uint8Array,
  // Either overload's callback: it is given what that overload promises.
  apply: (group: number, key: string, value: never, entryBytes: number) => void,
  options?: { lazy: true },
): PieceHeader {
  const header = readPieceHeader(bytes);
  const buf = asBuffer(bytes);
  const hold = options?.lazy === true ? { loaded: 0, live: 0 } : undefined;
  let at = HEADER_BYTES;
  const need = (n: number): void => {
    if (at + n > buf.length) malformed('it is truncated');
  };
  for (let i = 0; i < header.entries; i += 1) {
    const start = at;
    need(7);
    const group = buf.readUInt16BE(at);
    const op = buf.readUInt8(at + 2);
    const keyBytes = buf.readUInt32BE(at + 3);
    if (group >= header.keyGroups) malformed(`an entry has key group ${group} of ${header.keyGroups}`);
    if (op !== PUT && op !== DELETE) malformed(`an entry has operation ${op}`);
    at += 7;
    need(keyBytes);
    const key = buf.toString('utf8', at, at + keyBytes);
    at += keyBytes;
    let value: JsonValue | LazyString | undefined;
    if (op === PUT) {
      need(4);
      const valueBytes = buf.readUInt32BE(at);
      at += 4;
      need(valueBytes);
      value =
        hold !== undefined && valueBytes >= LAZY_STRING_MIN_BYTES && isPlainString(buf, at, at + valueBytes)
          ? new LazyString(buf, at, at + valueBytes, hold)
          : parseValue(buf, at, at + valueBytes, key);
      at += valueBytes;
    }
    apply(group, key, value as never, at - start);
  }
  if (at !== buf.length) malformed(`it has ${buf.length - at} bytes after its last entry`);
  return header;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** True when the JSON at `from`…`to` is a string without escapes: its bytes between the quotes are the string. */
function isPlainString(buf: Buffer, from: number, to: number): boolean {
  if (to - from < 2 || buf[from] !== QUOTE || buf[to - 1] !== QUOTE) return false;
  const inner = buf.subarray(from + 1, to - 1);
  return !inner.includes(BACKSLASH) && !inner.includes(QUOTE);
}

function parseValue(buf: Buffer, from: number, to: number, key: string): JsonValue {
  // A string without escapes (most string values) is its bytes between the quotes: no parser needed.
  if (isPlainString(buf, from, to)) return buf.toString('utf8', from + 1, to - 1);
  try {
    return JSON.parse(buf.toString('utf8', from, to)) as JsonValue;
  } catch {
    return malformed(`the value of key ${JSON.stringify(key)} is not JSON`);
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function malformed(problem: string): never {
  throw new CkptError('MALFORMED', `keyed state piece is malformed: ${problem}`);
}
