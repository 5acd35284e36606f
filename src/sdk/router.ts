/**
 * Where a task's records go: to the downstream task owning the key group of
 * the record's key, to one named downstream task, or to all of them.
 * Every worker computes the same choice for the same key and graph, so a
 * key always lands on the same task.
 */
import { CkptError } from '../core/errors.js';
import { partitionIndex } from '../core/key-groups.js';

export { fnv1a32 } from '../core/key-groups.js';

/** Where `emit` sends one record. */
export interface EmitOptions {
  /** Partitions by key: the record goes to one downstream task, the same for the same key. */
  key?: string;
  /** Sends to this downstream task only (takes precedence over `key`). */
  to?: string;
}

/**
 * The index in `[0, n)` of the partition of `key`: the task of `n` owning
 * the key's group (`src/core/key-groups.ts`), simple to reproduce in any
 * language and the same split keyed state is restored and rescaled by.
 */
export function partitionOf(key: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new CkptError('MALFORMED', `cannot partition over ${n} targets`);
  return partitionIndex(key, n);
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
      return this.#single.get(this.targets[partitionOf(options.key, this.targets.length)] as string) ?? [];
    }
    return this.targets;
  }
}
