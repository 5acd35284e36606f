/**
 * Reads what the word count's sink made visible and checks it against the
 * crash-free answer. A crash-free run emits, for every word w counted N
 * times, the updates "w 1" … "w N", each once. Exactly-once after crashes
 * means the visible output is exactly that: nothing lost, nothing twice.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { countDifferences } from './corpus.js';

/** The outcome of a check. */
export interface Verdict {
  ok: boolean;
  /** Updates read from the output stream. */
  updates: number;
  /** Final count per word: the highest total seen. */
  counts: Map<string, number>;
  /** What is wrong, at most a few lines. */
  problems: string[];
}

/** Every message of a stream, in order, as text. */
export async function readStream(nc: NatsConnection, stream: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  if (info.state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream);
  const out: string[] = [];
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push(m.string());
    if (m.seq >= last) break;
  }
  await messages.close();
  return out;
}

/** Checks the sink's updates ("word total" lines) against the expected counts. */
export function verify(updates: readonly string[], expected: ReadonlyMap<string, number>): Verdict {
  const counts = new Map<string, number>();
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const line of updates) {
    if (seen.has(line)) problems.push(`update "${line}" is visible twice`);
    seen.add(line);
    const [word, total] = line.split(' ');
    const n = Number(total);
    if (word === undefined || !Number.isSafeInteger(n)) {
      problems.push(`malformed update "${line}"`);
      continue;
    }
    counts.set(word, Math.max(counts.get(word) ?? 0, n));
  }
  problems.push(...countDifferences(expected, counts));
  const wanted = [...expected.values()].reduce((a, b) => a + b, 0);
  if (updates.length !== wanted) problems.push(`${updates.length} updates visible, ${wanted} expected`);
  return { ok: problems.length === 0, updates: updates.length, counts, problems: problems.slice(0, 10) };
}
