/**
 * The keyed state the `state` benchmark checkpoints: built from a seed, so
 * every run and every backend measures the same bytes. Each entry takes
 * exactly `ENTRY_BYTES` in a full piece (the SDK's logical size): a 7-byte
 * key and a JSON string of base64 characters drawn from a seeded PRNG (close
 * to incompressible, about 6 bits of entropy per byte).
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../src/sdk/state/canonical-json.js';
import { KeyedState } from '../../src/sdk/state/keyed-state.js';
import { ENTRY_OVERHEAD_BYTES } from '../../src/sdk/state/state-piece.js';

/** Bytes one entry takes in a full piece: overhead, key, quoted value. */
export const ENTRY_BYTES = 1024;
const KEY_DIGITS = 6;
/** Characters of each value string: what is left of `ENTRY_BYTES` after the key, the quotes and the overhead. */
const VALUE_CHARS = ENTRY_BYTES - ENTRY_OVERHEAD_BYTES - (1 + KEY_DIGITS) - 2;
/** PRNG bytes that base64 encode to at least `VALUE_CHARS` characters. */
const VALUE_RANDOM_BYTES = Math.ceil((VALUE_CHARS * 3) / 4);

/** A seeded 32-bit PRNG (mulberry32): the same seed, the same sequence. */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The next 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, `bound`). */
  below(bound: number): number {
    return this.next() % bound;
  }
}

/** The key of entry `index`: `k` and six digits. */
export function keyOf(index: number): string {
  return `k${String(index).padStart(KEY_DIGITS, '0')}`;
}

/** A value of `VALUE_CHARS` base64 characters drawn from `prng`. */
function valueOf(prng: Prng, scratch: Buffer): string {
  for (let at = 0; at + 4 <= scratch.length; at += 4) scratch.writeUInt32LE(prng.next(), at);
  return scratch.toString('base64', 0, VALUE_RANDOM_BYTES).slice(0, VALUE_CHARS);
}

/** How many keys a state of `stateBytes` logical bytes holds. */
export function keyCount(stateBytes: number): number {
  const keys = Math.max(1, Math.floor(stateBytes / ENTRY_BYTES));
  if (keys > 10 ** KEY_DIGITS)
    throw new Error(`a state of ${stateBytes} bytes needs more keys than ${KEY_DIGITS} digits name`);
  return keys;
}

/** A state of `keys` entries, values drawn from `prng`. */
export function buildState(keys: number, prng: Prng): KeyedState {
  const scratch = Buffer.alloc(Math.ceil(VALUE_RANDOM_BYTES / 4) * 4);
  const state = new KeyedState();
  for (let i = 0; i < keys; i++) state.set(keyOf(i), valueOf(prng, scratch));
  return state;
}

/** Sets `count` distinct keys of `state` (keys `0 … keys-1`) to new values of the same size. */
export function changeKeys(state: KeyedState, keys: number, count: number, prng: Prng): void {
  const scratch = Buffer.alloc(Math.ceil(VALUE_RANDOM_BYTES / 4) * 4);
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, keys)) chosen.add(prng.below(keys));
  for (const index of chosen) state.set(keyOf(index), valueOf(prng, scratch));
}

/** What a state holds, to compare two: its entry count and a sha256 of its entries in key order. */
export interface StateDigest {
  count: number;
  sha256: string;
}

/** The digest of `state`: independent of insertion order. */
export function digestState(state: KeyedState): StateDigest {
  const entries = [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  for (const [key, value] of entries) hash.update(`${JSON.stringify(key)}:${canonicalJson(value)}\n`);
  return { count: entries.length, sha256: hash.digest('hex') };
}
