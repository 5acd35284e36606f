/**
 * Feeding the corpus into JetStream at an even pace while faults run. Each
 * sentence carries a publication id, so a publication retried after a lost
 * acknowledgement (NATS restarting) is stored once.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { INPUT_SUBJECTS, type WordCountIo } from '../../examples/wordcount/job.js';

/** How often a batch is published. */
const TICK_MS = 50;
/** Deadline of one publication's acknowledgement. */
const PUBLISH_TIMEOUT_MS = 2_000;
/** How long one sentence may keep failing before the feed gives up. */
const GIVE_UP_MS = 120_000;

/** Publishes `corpus` into `io`'s input over `spanMs`; resolves when every sentence is stored. */
export async function feedCorpus(
  nc: NatsConnection,
  io: WordCountIo,
  corpus: readonly string[],
  spanMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const js = jetstream(nc);
  // One subject per split task of the reference shape.
  const subjects = INPUT_SUBJECTS.map((_, partition) => io.inputSubject(partition));
  const batch = Math.max(1, Math.ceil(corpus.length / Math.max(1, spanMs / TICK_MS)));
  const begin = Date.now();
  for (let i = 0; i < corpus.length; i += batch) {
    signal?.throwIfAborted();
    const indexes = Array.from({ length: Math.min(batch, corpus.length - i) }, (_, j) => i + j);
    await Promise.all(
      indexes.map((n) => publishOne(js, subjects[n % subjects.length] as string, n, corpus[n] as string)),
    );
    const due = begin + ((i + batch) / corpus.length) * spanMs;
    await delay(Math.max(0, due - Date.now()));
  }
}

async function publishOne(
  js: ReturnType<typeof jetstream>,
  subject: string,
  n: number,
  sentence: string,
): Promise<void> {
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    try {
      await js.publish(subject, sentence, { msgID: `sentence-${n}`, timeout: PUBLISH_TIMEOUT_MS });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`sentence ${n} not stored after ${GIVE_UP_MS} ms`, { cause: err });
      await delay(250);
    }
  }
}
