/**
 * A decoder for the request that dominates a coordinator's traffic: an
 * `AttachRequest` whose body is an acknowledgement (`SessionAcknowledge`,
 * up to 1,000 snapshots). It gives the very object proto-loader's generic
 * deserializer gives with the loader's options (`LOADER_OPTIONS`: defaults
 * set, enums as their names, an unknown enum number as the number, uint64
 * as the Number protobuf.js makes of its two 32-bit halves, strings as
 * Node's UTF-8 decoding gives them, `body: 'acknowledge'`), without a
 * protobuf.js message, a Long per uint64 and a generic conversion pass,
 * and with each snapshot's place in the bytes.
 *
 * It decodes the regular case only, as any encoder writes it, and answers
 * undefined for anything else, which the generic deserializer then decodes
 * or refuses as it always has: bytes that are not a Buffer; a message that
 * is not exactly one `acknowledge` field; any field the schema does not
 * have (unknown fields are not kept); a field with another wire type than
 * its own, or a tag of more than one byte (every known tag takes one); a
 * singular field that occurs twice (protobuf.js keeps the last, without
 * merging messages); a varint that is cut short, longer than ten bytes,
 * not minimal (ends in a zero byte) or whose tenth byte is not 1; a length
 * past the end of its message; an enum value that is no int32 as protobuf
 * writes one; a bool other than one byte 0 or 1; shared handles nested
 * more than `MAX_SHARED_DEPTH` deep. It never throws, and allocates in
 * proportion to the bytes it was given, never to a length they claim.
 */
import type { AttachRequest__Output } from '../gen/ckpt/v1/AttachRequest.js';
import type { SessionAcknowledge__Output } from '../gen/ckpt/v1/SessionAcknowledge.js';
import type { SnapshotMetrics__Output } from '../gen/ckpt/v1/SnapshotMetrics.js';
import type { SnapshotType__Output } from '../gen/ckpt/v1/SnapshotType.js';
import type { SourcePosition__Output } from '../gen/ckpt/v1/SourcePosition.js';
import type { StateCompression__Output } from '../gen/ckpt/v1/StateCompression.js';
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';

/** A request `decodeAcknowledgement` decoded. */
export interface DecodedAcknowledgement {
  /** Deep-equal to what the generic deserializer makes of the same bytes. */
  request: AttachRequest__Output & { acknowledge: SessionAcknowledge__Output };
  /**
   * Where each snapshot's encoding (without its tag and length) lies in
   * the bytes, in order: start and end of the first, of the second, ...
   */
  snapshotRanges: number[];
}

/** `SnapshotType` and `StateCompression` names by number (types.proto). */
const SNAPSHOT_TYPES: readonly SnapshotType__Output[] = [
  'SNAPSHOT_TYPE_UNSPECIFIED',
  'SNAPSHOT_TYPE_FULL',
  'SNAPSHOT_TYPE_INCREMENTAL',
  'SNAPSHOT_TYPE_SAVEPOINT',
];
const COMPRESSIONS: readonly StateCompression__Output[] = [
  'STATE_COMPRESSION_UNSPECIFIED',
  'STATE_COMPRESSION_NONE',
  'STATE_COMPRESSION_LZ4',
  'STATE_COMPRESSION_BROTLI',
];

/** `AttachRequest.acknowledge`: field 5, length-delimited. */
const ACKNOWLEDGE_TAG = (5 << 3) | 2;

/**
 * How deep `StateHandle.shared` may nest here (a handle's pieces have no
 * pieces of their own in practice); deeper ones, up to protobuf.js's
 * recursion limit of 100, take the generic path.
 */
export const MAX_SHARED_DEPTH = 16;

/** A number read that is not there or not as expected (every value read is at least 0). */
const FAIL = -1;
const TWO_POW_32 = 4294967296;

interface Utf8Slicing {
  utf8Slice(start: number, end: number): string;
}

/** As protobuf.js reads a string from a Buffer: `utf8Slice` where Node has it. */
const utf8Slice: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as Partial<Utf8Slicing>).utf8Slice === 'function'
    ? (buf, start, end) => (buf as unknown as Utf8Slicing).utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf-8', start, end);

/**
 * The request `bytes` encode, when it is an acknowledgement in the regular
 * form, with its snapshots' byte ranges; undefined for anything else.
 */
export function decodeAcknowledgement(bytes: Uint8Array): DecodedAcknowledgement | undefined {
  if (!Buffer.isBuffer(bytes) || bytes.length < 2 || bytes[0] !== ACKNOWLEDGE_TAG) return undefined;
  try {
    const cursor = new Cursor(bytes, 1);
    const length = cursor.length(bytes.length);
    if (length === FAIL || cursor.pos + length !== bytes.length) return undefined;
    const acknowledge = cursor.acknowledgement(bytes.length);
    if (acknowledge === undefined) return undefined;
    return { request: { acknowledge, body: 'acknowledge' }, snapshotRanges: cursor.ranges };
  } catch {
    // Not expected: every read is bounds-checked. The generic path decides.
    return undefined;
  }
}

/**
 * Reads the fields of one message at a time from `pos` up to its `end`.
 * Each message's fields are set in the order of protobuf.js's `toObject`,
 * defaults first, so that the objects match key for key.
 */
class Cursor {
  /** Low and high 32 bits of the varint `varint64` read last. */
  private lo = 0;
  private hi = 0;
  /** The values of one `SnapshotMetrics`, by field number. */
  private readonly scratch = new Float64Array(9);
  readonly ranges: number[] = [];

  constructor(
    private readonly buf: Buffer,
    public pos: number,
  ) {}

  acknowledgement(end: number): SessionAcknowledge__Output | undefined {
    const d: SessionAcknowledge__Output = { snapshots: [], requestId: 0, epoch: 0, checkpointId: 0 };
    let seen = 0;
    while (this.pos < end) {
      const tag = this.buf[this.pos++]!;
      if (tag === 0x22) {
        const to = this.within(end);
        const start = this.pos;
        const snapshot = to === FAIL ? undefined : this.snapshot(to);
        if (snapshot === undefined) return undefined;
        d.snapshots.push(snapshot);
        this.ranges.push(start, to);
        continue;
      }
      if ((seen & (1 << (tag >> 3))) !== 0) return undefined;
      seen |= 1 << (tag >> 3);
      const value = this.uint64(end);
      if (value === FAIL) return undefined;
      if (tag === 0x08) d.requestId = value;
      else if (tag === 0x10) d.epoch = value;
      else if (tag === 0x18) d.checkpointId = value;
      else return undefined;
    }
    return d;
  }

  private snapshot(end: number): TaskSnapshot__Output | undefined {
    const d: TaskSnapshot__Output = {
      positions: [],
      taskId: '',
      state: null,
      metrics: null,
      snapshotType: 'SNAPSHOT_TYPE_UNSPECIFIED',
    };
    let seen = 0;
    while (this.pos < end) {
      const tag = this.buf[this.pos++]!;
      if (tag === 0x1a) {
        const to = this.within(end);
        const position = to === FAIL ? undefined : this.position(to);
        if (position === undefined) return undefined;
        d.positions.push(position);
        continue;
      }
      if ((seen & (1 << (tag >> 3))) !== 0) return undefined;
      seen |= 1 << (tag >> 3);
      switch (tag) {
        case 0x0a: {
          const taskId = this.string(end);
          if (taskId === undefined) return undefined;
          d.taskId = taskId;
          break;
        }
        case 0x12: {
          const to = this.within(end);
          const state = to === FAIL ? undefined : this.handle(to, 0);
          if (state === undefined) return undefined;
          d.state = state;
          break;
        }
        case 0x22: {
          const to = this.within(end);
          const metrics = to === FAIL ? undefined : this.metrics(to);
          if (metrics === undefined) return undefined;
          d.metrics = metrics;
          break;
        }
        case 0x28: {
          const type = this.enumValue(end);
          if (type === undefined) return undefined;
          d.snapshotType = SNAPSHOT_TYPES[type] ?? (type as unknown as SnapshotType__Output);
          break;
        }
        default:
          return undefined;
      }
    }
    return d;
  }

  private handle(end: number, depth: number): StateHandle__Output | undefined {
    const d: StateHandle__Output = {
      shared: [],
      uri: '',
      sizeBytes: 0,
      checksum: '',
      compression: 'STATE_COMPRESSION_UNSPECIFIED',
      rawSizeBytes: 0,
      inFlightRecords: false,
    };
    let seen = 0;
    while (this.pos < end) {
      const tag = this.buf[this.pos++]!;
      if (tag === 0x22) {
        if (depth >= MAX_SHARED_DEPTH) return undefined;
        const to = this.within(end);
        const piece = to === FAIL ? undefined : this.handle(to, depth + 1);
        if (piece === undefined) return undefined;
        d.shared.push(piece);
        continue;
      }
      if ((seen & (1 << (tag >> 3))) !== 0) return undefined;
      seen |= 1 << (tag >> 3);
      if (tag === 0x0a || tag === 0x1a) {
        const text = this.string(end);
        if (text === undefined) return undefined;
        if (tag === 0x0a) d.uri = text;
        else d.checksum = text;
      } else if (tag === 0x10 || tag === 0x30) {
        const size = this.uint64(end);
        if (size === FAIL) return undefined;
        if (tag === 0x10) d.sizeBytes = size;
        else d.rawSizeBytes = size;
      } else if (tag === 0x28) {
        const compression = this.enumValue(end);
        if (compression === undefined) return undefined;
        d.compression = COMPRESSIONS[compression] ?? (compression as unknown as StateCompression__Output);
      } else if (tag === 0x38) {
        const flag = this.bool(end);
        if (flag === undefined) return undefined;
        d.inFlightRecords = flag;
      } else {
        return undefined;
      }
    }
    return d;
  }

  private position(end: number): SourcePosition__Output | undefined {
    const d: SourcePosition__Output = { input: '', offset: 0 };
    let seen = 0;
    while (this.pos < end) {
      const tag = this.buf[this.pos++]!;
      if ((seen & (1 << (tag >> 3))) !== 0) return undefined;
      seen |= 1 << (tag >> 3);
      if (tag === 0x0a) {
        const input = this.string(end);
        if (input === undefined) return undefined;
        d.input = input;
      } else if (tag === 0x10) {
        const offset = this.uint64(end);
        if (offset === FAIL) return undefined;
        d.offset = offset;
      } else {
        return undefined;
      }
    }
    return d;
  }

  private metrics(end: number): SnapshotMetrics__Output | undefined {
    const m = this.scratch.fill(0);
    let seen = 0;
    while (this.pos < end) {
      const tag = this.buf[this.pos++]!;
      // Fields 1 to 8, every one a uint64: tags 0x08, 0x10, ... 0x40.
      if ((tag & 7) !== 0 || tag < 0x08 || tag > 0x40 || (seen & (1 << (tag >> 3))) !== 0) return undefined;
      seen |= 1 << (tag >> 3);
      const value = this.uint64(end);
      if (value === FAIL) return undefined;
      m[tag >> 3] = value;
    }
    return {
      alignmentMs: m[1]!,
      syncMs: m[2]!,
      asyncMs: m[3]!,
      stateSizeBytes: m[4]!,
      persistedBytes: m[5]!,
      inFlightBytes: m[6]!,
      processedRecords: m[7]!,
      startDelayMs: m[8]!,
    };
  }

  /** Where the length-delimited message at `pos` ends, within `end`; FAIL when it does not fit. */
  private within(end: number): number {
    const length = this.length(end);
    return length === FAIL ? FAIL : this.pos + length;
  }

  /** A string's length and bytes within `end`, decoded as protobuf.js decodes them. */
  private string(end: number): string | undefined {
    const length = this.length(end);
    if (length === FAIL) return undefined;
    const start = this.pos;
    this.pos = start + length;
    return length === 0 ? '' : utf8Slice(this.buf, start, this.pos);
  }

  /** A length that fits within `end` after it; FAIL otherwise. */
  length(end: number): number {
    let length: number;
    const byte = this.pos < end ? this.buf[this.pos]! : 0x80;
    if (byte < 0x80) {
      this.pos += 1;
      length = byte;
    } else {
      // Minimal with a zero high half: at most five bytes, which protobuf.js's uint32 reads alike.
      if (!this.varint64(end) || this.hi !== 0) return FAIL;
      length = this.lo;
    }
    return length <= end - this.pos ? length : FAIL;
  }

  /** A uint64 as protobuf.js converts it with `longs: Number`: low + high * 2^32, rounded once. */
  private uint64(end: number): number {
    const byte = this.pos < end ? this.buf[this.pos]! : 0x80;
    if (byte < 0x80) {
      this.pos += 1;
      return byte;
    }
    return this.varint64(end) ? this.lo + this.hi * TWO_POW_32 : FAIL;
  }

  /** An int32 enum value: 0 to 2^31-1 in at most five bytes, or a negative one sign-extended to ten. */
  private enumValue(end: number): number | undefined {
    if (!this.varint64(end)) return undefined;
    if (this.hi === 0) return this.lo < 0x80000000 ? this.lo : undefined;
    return this.hi === 0xffffffff && this.lo >= 0x80000000 ? this.lo | 0 : undefined;
  }

  /** A bool as the one byte 0 or 1 (protobuf.js reads wider ones through 32 bits only). */
  private bool(end: number): boolean | undefined {
    const byte = this.pos < end ? this.buf[this.pos]! : 0x80;
    this.pos += 1;
    return byte === 0 ? false : byte === 1 ? true : undefined;
  }

  /**
   * Reads a minimal varint of one to ten bytes within `end` into `lo` and
   * `hi`, keeping bits as protobuf.js's `readLongVarint` keeps them; a
   * tenth byte must be 1 (bit 63). False, with `pos` anywhere, otherwise.
   */
  private varint64(end: number): boolean {
    const buf = this.buf;
    let pos = this.pos;
    let lo = 0;
    let byte = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) return false;
      byte = buf[pos++]!;
      lo |= (byte & 0x7f) << shift;
      if (byte < 0x80) return (byte !== 0 || shift === 0) && this.took(pos, lo, 0);
    }
    if (pos >= end) return false;
    byte = buf[pos++]!;
    lo = (lo | (byte << 28)) >>> 0;
    let hi = (byte & 0x7f) >>> 4;
    if (byte < 0x80) return byte !== 0 && this.took(pos, lo, hi);
    for (let shift = 3; shift < 31; shift += 7) {
      if (pos >= end) return false;
      byte = buf[pos++]!;
      hi |= (byte & 0x7f) << shift;
      if (byte < 0x80) return byte !== 0 && this.took(pos, lo, hi >>> 0);
    }
    if (pos >= end || buf[pos] !== 1) return false;
    return this.took(pos + 1, lo, (hi | 0x80000000) >>> 0);
  }

  private took(pos: number, lo: number, hi: number): true {
    this.pos = pos;
    this.lo = lo;
    this.hi = hi;
    return true;
  }
}
