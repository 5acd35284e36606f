/**
 * The seeded randomness of the fault suite: one seed gives one schedule.
 */

/** A generator of floats in [0, 1). */
export type Random = () => number;

/** The corpus and the fault schedule draw from the same generator. */
export { mulberry32 } from '../../examples/wordcount/corpus.js';

/** An integer in [min, max]. */
export function between(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** One of `items`, which must not be empty. */
export function pick<T>(random: Random, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[Math.floor(random() * items.length)] as T;
}
