/**
 * The word count written on nats.js alone, without ckpt: the data-plane
 * scenario's baseline. One process runs the tasks it is given, as the
 * reference worker processes do ([split-0, count-0] [split-1, count-1]
 * [sink]), with the same topology, reading and output:
 *
 * - `split-<i>` reads `sentences.<i>` of the input stream with an ordered
 *   consumer (256 messages a pull, as the SDK's source; on nats-server
 *   before 2.10, as the SDK's source there, every subject, skipping the
 *   others itself: `serverFiltersSlowly`) and publishes each
 *   word to one count task, `partitionOf(word, 2)` over the sorted count ids
 *   as the SDK's router partitions a keyed record;
 * - `count-<j>` counts each word and publishes "word total" to the sink;
 * - `sink` stores each update in the output stream as it arrives, with up
 *   to 256 publications waiting for the stream's acknowledgement.
 *
 * Edges are core NATS subjects `<prefix>.<from>.<to>` carrying the word
 * alone (no headers). No checkpoints, no exactly-once: what is left is the
 * cost of the pipeline itself. The process writes `ready` on stderr once
 * its subscriptions are registered (and the output stream exists); the
 * sources start reading at the first message on `<prefix>.go`.
 *
 *   node dist/bench/lib/bare-wordcount.js --nats URLS --prefix P --tasks split-0,count-0 [--job JOB_ID]
 *
 * `--job` names the streams and subjects as word count job JOB_ID's
 * (examples/wordcount/job.ts `wordCountIo`); default the reference job's.
 */
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { createInbox, type Msg, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { words } from '../../examples/wordcount/corpus.js';
import { wordCountIo, type WordCountIo } from '../../examples/wordcount/job.js';
import { serverFiltersSlowly } from '../../src/sdk/jetstream-filter.js';
import { partitionOf } from '../../src/sdk/router.js';

/** The count tasks, sorted as the SDK's router sorts the downstream tasks it partitions over. */
const COUNTS = ['count-0', 'count-1'];
/** Messages pulled per request by a source, the SDK source's default. */
const PULL_BATCH = 256;
/** Publications of the sink waiting for their acknowledgement at most, the SDK sink's default. */
const SINK_WINDOW = 256;
/** Published updates the sink's queue drops at once. */
const COMPACT_AFTER = 16_384;

/** What one process runs. */
interface Options {
  nats: string[];
  prefix: string;
  tasks: string[];
  /** The streams and subjects, those of word count job `--job` (default `wordcount`). */
  io: WordCountIo;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      nats: { type: 'string' },
      prefix: { type: 'string' },
      tasks: { type: 'string' },
      job: { type: 'string' },
    },
  });
  if (values.nats === undefined || values.prefix === undefined || values.tasks === undefined)
    throw new Error('usage: bare-wordcount.js --nats URLS --prefix SUBJECT_PREFIX --tasks T1,T2 [--job JOB_ID]');
  return {
    nats: values.nats.split(','),
    prefix: values.prefix,
    tasks: values.tasks.split(','),
    io: wordCountIo(values.job ?? 'wordcount'),
  };
}

/** Reads input subject `partition` from the first message and sends each word to its count task. */
async function split(nc: NatsConnection, io: WordCountIo, prefix: string, partition: number): Promise<void> {
  const from = `split-${partition}`;
  const edges = COUNTS.map((count) => `${prefix}.${from}.${count}`);
  const subject = io.inputSubject(partition);
  const filterHere = serverFiltersSlowly(nc.info?.version);
  const consumer = await jetstream(nc).consumers.get(io.inputStream, filterHere ? {} : { filter_subjects: subject });
  const messages = await consumer.consume({ max_messages: PULL_BATCH });
  for await (const msg of messages) {
    if (filterHere && msg.subject !== subject) continue;
    for (const word of words(msg.string())) nc.publish(edges[partitionOf(word, edges.length)] as string, word);
  }
}

/** Counts the words of every split and sends each new total to the sink. */
function count(nc: NatsConnection, prefix: string, taskId: string): void {
  const totals = new Map<string, number>();
  const out = `${prefix}.${taskId}.sink`;
  nc.subscribe(`${prefix}.*.${taskId}`, {
    callback: (err, msg) => {
      if (err !== null) fail(err);
      const word = msg.string();
      const total = (totals.get(word) ?? 0) + 1;
      totals.set(word, total);
      nc.publish(out, `${word} ${total}`);
    },
  });
}

/** Stores every update of the count tasks in the output stream, acknowledged, in arrival order. */
function sink(nc: NatsConnection, io: WordCountIo, prefix: string): void {
  const inbox = createInbox();
  // Updates not yet published from `next` on: an index, as shifting a long array costs its length.
  let queue: Uint8Array[] = [];
  let next = 0;
  let waiting = 0;
  const fill = (): void => {
    while (waiting < SINK_WINDOW && next < queue.length) {
      nc.publish(io.outputSubject, queue[next], { reply: inbox });
      next += 1;
      waiting += 1;
    }
    if (next >= COMPACT_AFTER) {
      queue = queue.slice(next);
      next = 0;
    }
  };
  nc.subscribe(inbox, {
    callback: (err, msg) => {
      if (err !== null) fail(err);
      checkAck(msg);
      waiting -= 1;
      fill();
    },
  });
  nc.subscribe(`${prefix}.*.sink`, {
    callback: (err, msg) => {
      if (err !== null) fail(err);
      // A copy, as the SDK's sink takes: the payload may be a view of the connection's read buffer.
      queue.push(msg.data.slice());
      fill();
    },
  });
}

/** Exits on a refusal of the stream: the run then fails for want of output instead of hanging unexplained. */
function checkAck(msg: Msg): void {
  if (msg.headers?.hasError === true || msg.data.length === 0) fail(new Error('the output stream did not answer'));
  const ack = msg.json<{ error?: { description?: string } }>();
  if (ack.error !== undefined) fail(new Error(`the output stream refused an update: ${ack.error.description}`));
}

/** Creates the output stream unless it exists (as the SDK's sink does before its first publication). */
async function ensureOutput(jsm: JetStreamManager, io: WordCountIo): Promise<void> {
  const names = await jsm.streams.names().next();
  if (!names.includes(io.outputStream)) await jsm.streams.add({ name: io.outputStream, subjects: [io.outputSubject] });
}

function fail(err: unknown): never {
  process.stderr.write(`bare-wordcount: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const options = parseOptions();
  const nc = await connect({ servers: options.nats, name: `bare-wordcount-${options.tasks.join('+')}` });
  const sources: number[] = [];
  for (const task of options.tasks) {
    const [kind, partition] = task.split('-');
    if (kind === 'split') sources.push(Number(partition));
    else if (kind === 'count') count(nc, options.prefix, task);
    else if (task === 'sink') sink(nc, options.io, options.prefix);
    else throw new Error(`the word count has no task ${task}`);
  }
  if (options.tasks.includes('sink')) await ensureOutput(await jetstreamManager(nc), options.io);
  const go = new Promise<void>((resolve) =>
    nc.subscribe(`${options.prefix}.go`, { max: 1, callback: () => resolve() }),
  );
  await nc.flush();
  process.stderr.write('ready\n');
  await go;
  await Promise.all(sources.map((partition) => split(nc, options.io, options.prefix, partition)));
  await nc.closed();
}

process.once('SIGTERM', () => process.exit(0));
main().catch(fail);
