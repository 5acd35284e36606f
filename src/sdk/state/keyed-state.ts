/**
 * Keyed state for tasks that would rather not write their own snapshot and
 * restore code: a map of string keys to JSON values, which
 * `encodeKeyedState` turns into snapshot bytes and `decodeKeyedState` back.
 */

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

/**
 * A map of string keys to JSON values with the usual `Map` methods.
 * Iteration follows insertion order; the encoding does not depend on it.
 * Values are stored as given, not copied: the snapshot is taken when the
 * checkpoint's synchronous part runs. The state remembers which keys were
 * set or deleted since the last snapshot, so that an incremental snapshot
 * stores only those: a value changed in place (an object or array mutated)
 * must be `set` again to be stored.
 */
export class KeyedState<V extends JsonValue = JsonValue> implements Iterable<[string, V]> {
  readonly #entries: Map<string, V>;
  #changed = new Set<string>();
  #cleared = false;

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
    return this.#entries.get(key);
  }

  /** Sets the value of `key`; returns the state for chaining. */
  set(key: string, value: V): this {
    this.#entries.set(key, value);
    this.#changed.add(key);
    return this;
  }

  /** Removes `key`; true when it was there. */
  delete(key: string): boolean {
    const deleted = this.#entries.delete(key);
    if (deleted) this.#changed.add(key);
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
  }

  /** The keys and values, in insertion order. */
  entries(): IterableIterator<[string, V]> {
    return this.#entries.entries();
  }

  /** Same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.#entries.entries();
  }

  /** The changes since the last call, which starts a new set. */
  [TAKE_CHANGES](): StateChanges {
    const changes = { keys: this.#changed, cleared: this.#cleared };
    this.#changed = new Set();
    this.#cleared = false;
    return changes;
  }
}
