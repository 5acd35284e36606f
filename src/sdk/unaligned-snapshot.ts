/**
 * The snapshot of a task in unaligned mode: the task's own state bytes plus
 * the in-flight records, those that arrived on an input before that input's
 * barrier but were processed after the snapshot. On restore they are
 * processed again, before anything new.
 *
 * Encoding (big-endian): "CKU1", u32 state length, the state, u32 record
 * count, then per record: u16 input length, the input (UTF-8), u32 key
 * length or 0xFFFFFFFF for none, the key (UTF-8), u32 value length, the value.
 */
import { CkptError } from '../core/errors.js';

/** One record that was in flight when a task snapshotted. */
export interface InFlightRecord {
  /** The input (upstream task) it came from. */
  from: string;
  key: string | undefined;
  value: Uint8Array;
}

/** A decoded unaligned snapshot. */
export interface UnalignedSnapshot {
  state: Uint8Array;
  inFlight: InFlightRecord[];
}

const MAGIC = [0x43, 0x4b, 0x55, 0x31];
const NO_KEY = 0xffffffff;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes a task's state and its in-flight records. */
export function encodeUnalignedSnapshot(state: Uint8Array, inFlight: readonly InFlightRecord[]): Uint8Array {
  const parts = inFlight.map((r) => ({
    from: encoder.encode(r.from),
    key: r.key === undefined ? undefined : encoder.encode(r.key),
    value: r.value,
  }));
  const size = parts.reduce(
    (n, p) => n + 10 + p.from.length + (p.key?.length ?? 0) + p.value.length,
    12 + state.length,
  );
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(4, state.length);
  out.set(state, 8);
  let at = 8 + state.length;
  view.setUint32(at, parts.length);
  at += 4;
  for (const p of parts) {
    view.setUint16(at, p.from.length);
    out.set(p.from, at + 2);
    at += 2 + p.from.length;
    view.setUint32(at, p.key === undefined ? NO_KEY : p.key.length);
    if (p.key !== undefined) out.set(p.key, at + 4);
    at += 4 + (p.key?.length ?? 0);
    view.setUint32(at, p.value.length);
    out.set(p.value, at + 4);
    at += 4 + p.value.length;
  }
  return out;
}

/**
 * Whether `bytes` start with the header `encodeUnalignedSnapshot` writes.
 * A piece of keyed state never does (it starts with its own header or is
 * JSON text); a task's own snapshot bytes might.
 */
export function hasUnalignedHeader(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/** Decodes what `encodeUnalignedSnapshot` wrote; throws `CkptError('MALFORMED')` for anything else. */
export function decodeUnalignedSnapshot(bytes: Uint8Array): UnalignedSnapshot {
  const reader = new Reader(bytes);
  if (!hasUnalignedHeader(bytes)) malformed('it has a wrong header');
  reader.skip(4);
  const state = reader.bytes(reader.u32());
  const inFlight: InFlightRecord[] = [];
  for (let n = reader.u32(); n > 0; n -= 1) {
    const from = reader.text(reader.u16());
    const keyLength = reader.u32();
    const key = keyLength === NO_KEY ? undefined : reader.text(keyLength);
    inFlight.push({ from, key, value: reader.bytes(reader.u32()) });
  }
  if (!reader.atEnd()) malformed('it has trailing bytes');
  return { state, inFlight };
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  skip(n: number): void {
    this.#need(n);
    this.#at += n;
  }

  u16(): number {
    this.#need(2);
    const v = this.#view.getUint16(this.#at);
    this.#at += 2;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at);
    this.#at += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.#need(n);
    const v = this.#bytes.slice(this.#at, this.#at + n);
    this.#at += n;
    return v;
  }

  text(n: number): string {
    try {
      return decoder.decode(this.bytes(n));
    } catch (err) {
      if (err instanceof CkptError) throw err;
      return malformed('a name is not UTF-8');
    }
  }

  atEnd(): boolean {
    return this.#at === this.#bytes.length;
  }

  #need(n: number): void {
    if (this.#at + n > this.#bytes.length) malformed('it is truncated');
  }
}

function malformed(problem: string): never {
  throw new CkptError('MALFORMED', `unaligned snapshot is malformed: ${problem}`);
}

/** A snapshot taken at the first barrier, waiting for the others while it records in-flight records. */
export interface OpenUnaligned<T> {
  /** What the snapshot took synchronously (state bytes, measurements…). */
  taken: T;
  inFlight: InFlightRecord[];
  inFlightBytes: number;
}

/** The unaligned snapshots of one task that wait for their last barrier. */
export class InFlightRecorder<T> {
  readonly #open = new Map<number, OpenUnaligned<T>>();

  /** Starts recording for checkpoint `checkpointId`. */
  open(checkpointId: number, taken: T): void {
    this.#open.set(checkpointId, { taken, inFlight: [], inFlightBytes: 0 });
  }

  /** Records `record` as in flight for each of `checkpointIds` that is open. */
  record(checkpointIds: readonly number[], record: InFlightRecord): void {
    for (const id of checkpointIds) {
      const entry = this.#open.get(id);
      if (entry === undefined) continue;
      entry.inFlight.push(record);
      entry.inFlightBytes += record.value.length;
    }
  }

  /** Ends recording for `checkpointId` and returns what was recorded. */
  take(checkpointId: number): OpenUnaligned<T> | undefined {
    const entry = this.#open.get(checkpointId);
    this.#open.delete(checkpointId);
    return entry;
  }

  /** Forgets `checkpointId`, or every one up to it with `upTo`. */
  drop(checkpointId: number, upTo = false): void {
    for (const id of [...this.#open.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#open.delete(id);
  }

  /** Forgets everything. */
  clear(): void {
    this.#open.clear();
  }
}
