/**
 * A source task reading a JetStream stream with an ordered consumer. Its
 * position is the stream sequence of the last message it handled; after a
 * restore it resumes right after it, so every message is handled exactly
 * once per consistent cut.
 */
import { DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { fromNatsError } from '../bus/index.js';
import { emitAll, type Emissions } from './emission.js';
import { filtersSlowlyWhenResuming, subjectMatches } from './jetstream-filter.js';
import { ensureStream } from './jetstream-stream.js';
import { isPromiseLike } from './promise-like.js';
import type { SourceMessage, SourcePosition, SourceTask, TaskContext } from './task.js';

/** Options of `jetStreamSource`. */
export interface JetStreamSourceOptions {
  /** The stream to read. */
  stream: string;
  /**
   * Reads only this subject (filter). Default: every subject of the stream.
   * Against nats-server before 2.10, a source resuming inside the stream
   * reads every subject and skips the others itself, which is much faster
   * there than the server's filter.
   */
  subject?: string;
  /** Creates the stream (with `subject` as its subject) when it does not exist. Default false. */
  createStream?: boolean;
  /**
   * Decides what to emit for one message. Default: its payload, to every
   * downstream task.
   */
  map?: (message: JsMsg, ctx: TaskContext) => Emissions | Promise<Emissions>;
  /** Messages pulled per request. Default 256. */
  batchSize?: number;
  /** Reads on this connection instead of the worker's. */
  connection?: NatsConnection;
}

/** The input name a JetStream source records its position under: `<stream>/<subject>`. */
export function jetStreamInput(stream: string, subject: string | undefined): string {
  return `${stream}/${subject ?? '>'}`;
}

/** A `SourceTask` reading `options.stream`. Use one instance per task. */
export function jetStreamSource(options: JetStreamSourceOptions): SourceTask<JsMsg> {
  const input = jetStreamInput(options.stream, options.subject);
  return {
    read: (positions, ctx) => readStream(options, input, positions, ctx),
    handle(message: SourceMessage<JsMsg>, ctx: TaskContext): void | Promise<void> {
      if (options.map === undefined) {
        emitAll(message.value.data, ctx);
        return;
      }
      const emissions = options.map(message.value, ctx);
      // A synchronous map is handled without a microtask turn per message.
      if (isPromiseLike(emissions)) return Promise.resolve(emissions).then((e) => emitAll(e, ctx));
      emitAll(emissions, ctx);
    },
  };
}

async function* readStream(
  options: JetStreamSourceOptions,
  input: string,
  positions: readonly SourcePosition[],
  ctx: TaskContext,
): AsyncGenerator<SourceMessage<JsMsg>> {
  const nc = options.connection ?? ctx.nats;
  const after = positions.find((p) => p.input === input)?.offset ?? 0;
  const { subject } = options;
  // Resuming inside the stream: on servers that filter slowly there, read every subject and filter here.
  const filterHere = subject !== undefined && after > 0 && filtersSlowlyWhenResuming(nc.info?.version);
  const messages = await openConsumer(nc, options, after, filterHere, ctx);
  const stop = (): void => void messages.close().catch(() => {});
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of messages) {
      if (ctx.signal.aborted) return;
      if (filterHere && !subjectMatches(subject, msg.subject)) continue;
      yield { input, offset: msg.seq, value: msg };
    }
  } finally {
    ctx.signal.removeEventListener('abort', stop);
    stop();
  }
}

async function openConsumer(
  nc: NatsConnection,
  options: JetStreamSourceOptions,
  after: number,
  filterHere: boolean,
  ctx: TaskContext,
): Promise<ConsumerMessages> {
  if (options.createStream === true) {
    await ensureStream(nc, { name: options.stream, subjects: [options.subject ?? `${options.stream}.>`] }, ctx.logger);
  }
  try {
    const consumer = await jetstream(nc).consumers.get(options.stream, {
      // A single subject as a string: servers before 2.10 know only one filter subject.
      ...(options.subject === undefined || filterHere ? {} : { filter_subjects: options.subject }),
      ...(after > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 } : {}),
    });
    return await consumer.consume({ max_messages: options.batchSize ?? 256 });
  } catch (err) {
    throw fromNatsError(err, `read stream ${options.stream}`, { jobId: ctx.jobId, taskId: ctx.taskId });
  }
}
