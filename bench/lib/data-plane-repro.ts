/**
 * A standalone reproduction of the data-plane scenario's slow reading on
 * nats-server before 2.10 (`serverFiltersSlowly`): the corpus stored as
 * the scenario stores it (25,000 sentences alternating between two
 * subjects), read by one ordered consumer per subject, subject-filtered
 * by the server or reading every subject and skipping the others; with or
 * without one consumer info after each consumer's 1,000th message, as
 * nats.js asks when heartbeats are missed. Prints each variant's read time
 * and nats-server's CPU time; each variant runs on a fresh nats-server.
 *
 *   node --import tsx bench/lib/data-plane-repro.ts [variant...]
 */
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sentences } from '../../examples/wordcount/corpus.js';
import { startNats } from '../../src/dev/index.js';
import { preloadInput, processCpuMs } from '../wordcount-stack.js';

const SENTENCES = 25_000;
const SUBJECTS = ['sentences.0', 'sentences.1'];
const INFO_AFTER = 1000;

interface Variant {
  storage: StorageType;
  /** The server filters each consumer on its subject; otherwise each reads every subject. */
  serverFilter: boolean;
  /** One consumer info after each consumer's `INFO_AFTER`th message. */
  info: boolean;
}

const VARIANTS: Record<string, Variant> = {
  'file-filtered': { storage: StorageType.File, serverFilter: true, info: false },
  'file-filtered-info': { storage: StorageType.File, serverFilter: true, info: true },
  'file-unfiltered-info': { storage: StorageType.File, serverFilter: false, info: true },
  'memory-filtered-info': { storage: StorageType.Memory, serverFilter: true, info: true },
};

async function run(name: string, variant: Variant): Promise<void> {
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  try {
    await preloadInput(nc, sentences(SENTENCES), SUBJECTS);
    if (variant.storage === StorageType.Memory) {
      // preloadInput stores on file: the same messages again, in memory.
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete('SENTENCES');
      await jsm.streams.add({ name: 'SENTENCES', subjects: ['sentences.*'], storage: StorageType.Memory });
      const js = jetstream(nc);
      const text = sentences(SENTENCES);
      for (let i = 0; i < text.length; i += 1024) {
        const window = text.slice(i, i + 1024);
        await Promise.all(window.map((s, j) => js.publish(SUBJECTS[(i + j) % SUBJECTS.length] ?? '', s)));
      }
    }
    const cpuBefore = await processCpuMs(nats.pid);
    const started = Date.now();
    const counts = await Promise.all(SUBJECTS.map((subject) => readSubject(nc, subject, variant)));
    const ms = Date.now() - started;
    const cpuMs = (await processCpuMs(nats.pid)) - cpuBefore;
    const read = counts.reduce((n, c) => n + c, 0);
    process.stdout.write(`${name}: ${read} sentences read in ${ms} ms, nats-server CPU ${cpuMs} ms\n`);
  } finally {
    await nc.close();
    await nats.stop();
  }
}

/** Reads `subject`'s sentences to the end of the stream; resolves with their number. */
async function readSubject(
  nc: Awaited<ReturnType<typeof connect>>,
  subject: string,
  variant: Variant,
): Promise<number> {
  const consumer = await jetstream(nc).consumers.get(
    'SENTENCES',
    variant.serverFilter ? { filter_subjects: subject } : {},
  );
  const messages = await consumer.consume({ max_messages: 256 });
  let mine = 0;
  for await (const msg of messages) {
    if (msg.subject === subject) {
      mine += 1;
      if (variant.info && mine === INFO_AFTER) await consumer.info();
    }
    if (msg.info.pending === 0) break;
  }
  return mine;
}

const chosen = process.argv.slice(2);
for (const [name, variant] of Object.entries(VARIANTS)) {
  if (chosen.length === 0 || chosen.includes(name)) await run(name, variant);
}
