/**
 * Keyed state for tasks that would rather not write their own snapshot and
 * restore code: a map of string keys to JSON values, which
 * `encodeKeyedState` turns into snapshot bytes and `decodeKeyedState` back.
 */

/** A value `KeyedState` holds: anything JSON represents. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * A map of string keys to JSON values with the usual `Map` methods.
 * Iteration follows insertion order; the encoding does not depend on it.
 * Values are stored as given, not copied: the snapshot is taken when
 * `encodeKeyedState` runs.
 */
export class KeyedState<V extends JsonValue = JsonValue> implements Iterable<[string, V]> {
  readonly #entries: Map<string, V>;

  /** A state holding `entries`, later ones replacing earlier ones with the same key. */
  constructor(entries: Iterable<readonly [string, V]> = []) {
    this.#entries = new Map(entries);
  }

  /** How many keys the state holds. */
  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key`, or `undefined`. */
  get(key: string): V | undefined {
    return this.#entries.get(key);
  }

  /** Sets the value of `key`; returns the state for chaining. */
  set(key: string, value: V): this {
    this.#entries.set(key, value);
    return this;
  }

  /** Removes `key`; true when it was there. */
  delete(key: string): boolean {
    return this.#entries.delete(key);
  }

  /** Whether the state holds `key`. */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Removes every key. */
  clear(): void {
    this.#entries.clear();
  }

  /** The keys and values, in insertion order. */
  entries(): IterableIterator<[string, V]> {
    return this.#entries.entries();
  }

  /** Same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.#entries.entries();
  }
}
