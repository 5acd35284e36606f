/**
 * A deterministic corpus of sentences and the word counts it must produce,
 * so that a run can be checked against the crash-free answer.
 */

const VOCABULARY = (
  'barrier snapshot epoch manifest coordinator worker task source sink stream ' +
  'record offset checkpoint commit abort recover align state handle etcd nats ' +
  'lease leader quorum partition window counter buffer latency throughput replay ' +
  'exactly once consistent cut chandy lamport marker channel fifo token ' +
  'apple river mountain cloud forest ocean desert valley meadow harbor'
).split(' ');

/** mulberry32: a small, fast generator of floats in [0, 1) from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` sentences of 4 to 12 words; the same seed gives the same corpus. */
export function sentences(count: number, seed = 42): string[] {
  const next = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = 4 + Math.floor(next() * 9);
    const words: string[] = [];
    // Skewed towards the first words, as real text is.
    for (let w = 0; w < length; w++) words.push(VOCABULARY[Math.floor(next() ** 2 * VOCABULARY.length)] as string);
    out.push(words.join(' '));
  }
  return out;
}

/** Splits a sentence into words, as the split task does. */
export function words(sentence: string): string[] {
  return sentence.split(/\s+/).filter((w) => w !== '');
}

/** The counts a crash-free run produces. */
export function expectedCounts(corpus: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of corpus) for (const w of words(s)) counts.set(w, (counts.get(w) ?? 0) + 1);
  return counts;
}

/** Differences between two count maps, for a failure report; empty when equal. */
export function countDifferences(expected: ReadonlyMap<string, number>, actual: ReadonlyMap<string, number>): string[] {
  const diffs: string[] = [];
  for (const word of new Set([...expected.keys(), ...actual.keys()])) {
    const e = expected.get(word) ?? 0;
    const a = actual.get(word) ?? 0;
    if (e !== a) diffs.push(`${word}: expected ${e}, got ${a}`);
  }
  return diffs.sort();
}
