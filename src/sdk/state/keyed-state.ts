/**
 * Keyed state for tasks that would rather not write their own snapshot and
 * restore code: a map of string keys to JSON values, which
 * `encodeKeyedState` turns into snapshot bytes and `decodeKeyedState` back.
 */

import { LazyString, type PieceHold } from './state-piece.js';

/** A value `KeyedState` holds: anything JSON represents. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What changed in a state since the changes were last taken. */
export interface StateChanges {
  /** Keys set or deleted. */
  keys: Set<string>;
  /** True when `clear` ran: every key may have changed. */
  cleared: boolean;
}

/** The method that takes a state's changes; not part of the public surface. */
export const TAKE_CHANGES: unique symbol = Symbol('ckpt.KeyedState.takeChanges');

/** The method a restore sets or deletes a key with, unrecorded as a change; not part of the public surface. */
export const LOAD: unique symbol = Symbol('ckpt.KeyedState.load');

/** The entries as held: a restored string value still in its piece is a `LazyString`; not part of the public surface. */
export const HELD_ENTRIES: unique symbol = Symbol('ckpt.KeyedState.heldEntries');

/**
 * A piece's values are all decoded once fewer than this share of the bytes
 * the state took from it unread are still held so, so that a piece mostly
 * overwritten does not stay in memory for a few values.
 */
const COMPACT_BELOW_LIVE_SHARE = 0.5;

/**
 * A map of string keys to JSON values with the usual `Map` methods.
 * Iteration follows insertion order; the encoding does not depend on it.
 * Values are stored as given, not copied: the snapshot is taken when the
 * checkpoint's synchronous part runs. The state remembers which keys were
 * set or deleted since the last snapshot, so that an incremental snapshot
 * stores only those: a value changed in place (an object or array mutated)
 * must be `set` again to be stored. A restored state leaves long string
 * values in the pieces they were read from until they are first read.
 */
export class KeyedState<V extends JsonValue = JsonValue> implements Iterable<[string, V]> {
  readonly #entries: Map<string, V | LazyString>;
  #changed = new Set<string>();
  #cleared = false;
  /** Values held as `LazyString`s. */
  #lazy = 0;

  /** A state holding `entries`, later ones replacing earlier ones with the same key. */
  constructor(entries: Iterable<readonly [string, V]> = []) {
    this.#entries = new Map(entries);
    for (const key of this.#entries.keys()) this.#changed.add(key);
  }

  /** How many keys the state holds. */
  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): V | undefined {
    const value = this.#entries.get(key);
    return value instanceof LazyString ? this.#decode(key, value) : value;
  }

  /** Sets the value of `key`; returns the state for chaining. */
  set(key: string, value: V): this {
    const before = this.#lazy > 0 ? this.#entries.get(key) : undefined;
    this.#entries.set(key, value);
    this.#changed.add(key);
    this.#release(before);
    return this;
  }

  /** Removes `key`; true when it was there. */
  delete(key: string): boolean {
    const before = this.#lazy > 0 ? this.#entries.get(key) : undefined;
    const deleted = this.#entries.delete(key);
    if (deleted) this.#changed.add(key);
    this.#release(before);
    return deleted;
  }

  /** Whether the state holds `key`. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Removes every key. */
  clear(): void {
    this.#entries.clear();
    this.#changed.clear();
    this.#cleared = true;
    this.#lazy = 0;
  }

  /** The keys and values, in insertion order. */
  entries(): IterableIterator<[string, V]> {
    return this.#lazy === 0 ? (this.#entries.entries() as IterableIterator<[string, V]>) : this.#decodedEntries();
  }

  /** Same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }

  /** Sets (or with `undefined` deletes) `key` as a restore does: not recorded as a change. */
  [LOAD](key: string, value: V | LazyString | undefined): void {
    const before = this.#lazy > 0 ? this.#entries.get(key) : undefined;
    if (value === undefined) this.#entries.delete(key);
    else this.#entries.set(key, value);
    if (value instanceof LazyString) {
      this.#lazy += 1;
      value.hold.loaded += value.jsonBytes;
      value.hold.live += value.jsonBytes;
    }
    // After the entry changed: letting a piece go decodes the values it still holds, and this one is not among them.
    this.#release(before);
  }

  /** The entries as held, lazy values undecoded. */
  [HELD_ENTRIES](): IterableIterator<[string, V | LazyString]> {
    return this.#entries.entries();
  }

  *#decodedEntries(): IterableIterator<[string, V]> {
    for (const [key, value] of this.#entries) {
      yield [key, value instanceof LazyString ? this.#decode(key, value) : value];
    }
  }

  /** Decodes a lazy value and holds it decoded. */
  #decode(key: string, lazy: LazyString): V {
    const value = lazy.decode() as V;
    this.#entries.set(key, value);
    this.#release(lazy);
    return value;
  }

  /**
   * A lazy value is no longer held (its entry already changed); when its
   * piece is mostly dead weight, every value of it still held is decoded.
   */
  #release(value: V | LazyString | undefined): void {
    if (!(value instanceof LazyString)) return;
    this.#lazy -= 1;
    const { hold } = value;
    hold.live -= value.jsonBytes;
    if (hold.live > 0 && hold.live < hold.loaded * COMPACT_BELOW_LIVE_SHARE) this.#decodeAllOf(hold);
  }

  #decodeAllOf(hold: PieceHold): void {
    // Marked as empty first, so that the releases below do not start this again.
    hold.live = 0;
    for (const [key, value] of this.#entries) {
      if (value instanceof LazyString && value.hold === hold) {
        this.#entries.set(key, value.decode() as V);
        this.#lazy -= 1;
      }
    }
  }

  /** The changes since the last call, which starts a new set. */
  [TAKE_CHANGES](): StateChanges {
    const changes = { keys: this.#changed, cleared: this.#cleared };
    this.#changed = new Set();
    this.#cleared = false;
    return changes;
  }
}
