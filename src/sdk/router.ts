/**
 * Where a task's records go: to one downstream task chosen by a stable hash
 * of the record's key, to one named downstream task, or to all of them.
 * Every worker computes the same choice for the same key and graph, so a
 * key always lands on the same task.
 */
import { CkptError } from '../core/errors.js';

/** Where `emit` sends one record. */
export interface EmitOptions {
  /** Partitions by key: the record goes to one downstream task, the same for the same key. */
  key?: string;
  /** Sends to this downstream task only (takes precedence over `key`). */
  to?: string;
}

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/** The 32-bit FNV-1a hash of the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  // ASCII text is its own UTF-8: hashed without encoding it first.
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return fnv1a32Bytes(encoder.encode(text));
    hash ^= code;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

/**
 * The index in `[0, n)` of the partition of `key`: `fnv1a32(key) mod n`,
 * simple to reproduce in any language.
 */
export function partitionOf(key: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new CkptError('MALFORMED', `cannot partition over ${n} targets`);
  return fnv1a32(key) % n;
}

/** Picks the downstream tasks of one producing task. */
export class Router {
  /** The downstream task ids, sorted: the order the hash partitions over. */
  readonly targets: readonly string[];
  readonly #taskId: string;
  /** Per target, the one-element list `route` returns for it. */
  readonly #single: ReadonlyMap<string, readonly string[]>;

  /** `taskId` is the producer, `downstream` the tasks reading from it (any order). */
  constructor(taskId: string, downstream: readonly string[]) {
    this.#taskId = taskId;
    this.targets = [...new Set(downstream)].sort();
    this.#single = new Map(this.targets.map((t) => [t, [t]]));
  }

  /**
   * The tasks one record goes to: the named one, the key's partition, or
   * all. Throws `CkptError('MALFORMED')` when `to` is not a downstream task.
   */
  route(options: EmitOptions = {}): readonly string[] {
    if (options.to !== undefined) {
      const named = this.#single.get(options.to);
      if (named === undefined) {
        throw new CkptError('MALFORMED', `task ${options.to} does not read from task ${this.#taskId}`, {
          taskId: this.#taskId,
        });
      }
      return named;
    }
    if (options.key !== undefined && this.targets.length > 0) {
      return this.#single.get(this.targets[fnv1a32(options.key) % this.targets.length] as string) ?? [];
    }
    return this.targets;
  }
}
