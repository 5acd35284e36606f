/**
 * Snapshot bytes to compress: the keyed state encoding of a word count with
 * a large vocabulary, keyed state of random hex keys and numbers, and random
 * bytes. Deterministic from their seed, so that runs compare.
 */
import { encodeKeyedState, KeyedState } from '../../src/sdk/state/index.js';
import { mulberry32 } from '../../examples/wordcount/corpus.js';

/** One kind of state and its bytes. */
export interface StateSample {
  /** Id segment of the rows, e.g. `wordcount`. */
  kind: string;
  /** What the bytes are, for the rows' conditions. */
  description: string;
  bytes: Uint8Array;
}

const ONSETS = ['', 'b', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'w', 'st', 'tr', 'ch', 'sh'];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'ea', 'ou', 'ai'];
const CODAS = ['', 'n', 'r', 's', 't', 'ng', 'ck', 'll'];

/** Syllables of a made-up language; words of 1 to 4 of them, common ones first. */
const SYLLABLES = ONSETS.flatMap((onset) => VOWELS.flatMap((vowel) => CODAS.map((coda) => onset + vowel + coda)));

/**
 * The snapshot of the word count's `count` task holding about `targetBytes`:
 * distinct words with Zipf-distributed counts (the word of rank r was seen
 * about 10^7 / r times), encoded as `encodeKeyedState` does.
 */
export function wordCountSample(targetBytes: number, seed = 7): StateSample {
  const next = mulberry32(seed);
  const words = new Set<string>();
  // An entry `["word",count],` is about 20 bytes.
  while (words.size < targetBytes / 20) {
    const length = 1 + Math.floor(next() * 4);
    let word = '';
    for (let i = 0; i < length; i++) word += SYLLABLES[Math.floor(next() ** 2 * SYLLABLES.length)];
    words.add(word);
  }
  const state = new KeyedState<number>();
  let rank = 0;
  for (const word of words) state.set(word, Math.max(1, Math.floor(1e7 / ++rank)));
  const bytes = encodeKeyedState(state);
  return { kind: 'wordcount', description: `word count keyed state, ${state.size} words, Zipf counts`, bytes };
}

/** Keyed state of about `targetBytes` whose keys are 16 random hex digits and values random integers below 2^40. */
export function randomishSample(targetBytes: number, seed = 11): StateSample {
  const next = mulberry32(seed);
  const hex = (): string =>
    Math.floor(next() * 2 ** 32)
      .toString(16)
      .padStart(8, '0');
  const state = new KeyedState<number>();
  // An entry `["<16 hex>",<13 digits>],` is about 35 bytes.
  while (state.size < targetBytes / 35) state.set(hex() + hex(), Math.floor(next() * 2 ** 40));
  const bytes = encodeKeyedState(state);
  return { kind: 'randomish', description: `keyed state of ${state.size} random hex keys and numbers`, bytes };
}

/** `size` bytes from the seeded generator: nothing to compress. */
export function randomSample(size: number, seed = 13): StateSample {
  const next = mulberry32(seed);
  const bytes = new Uint8Array(size);
  const words = new Uint32Array(bytes.buffer, 0, Math.floor(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(next() * 2 ** 32);
  return { kind: 'random', description: 'random bytes', bytes };
}
