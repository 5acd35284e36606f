/**
 * A source task reading a JetStream stream with an ordered consumer. Its
 * position is the stream sequence of the last message it handled; after a
 * restore it resumes right after it, so every message is handled exactly
 * once per consistent cut.
 */
import { DeliverPolicy, jetstream, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { fromNatsError } from '../bus/index.js';
import { backoffDelayMs } from '../core/backoff.js';
import { sleep } from '../worker-protocol/sleep.js';
import { emitAll, type Emissions } from './emission.js';
import { serverFiltersSlowly, subjectMatches } from './jetstream-filter.js';
import { ensureStream } from './jetstream-stream.js';
import { isPromiseLike } from './promise-like.js';
import type { SourceMessage, SourcePosition, SourceTask, TaskContext } from './task.js';

/** Options of `jetStreamSource`. */
export interface JetStreamSourceOptions {
  /** The stream to read. */
  stream: string;
  /**
   * Reads only this subject (filter). Default: every subject of the stream.
   * Against nats-server before 2.10, the source reads every subject and
   * skips the others itself: the server's filter can turn slow there
   * (`serverFiltersSlowly`).
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
  /**
   * The server sends a heartbeat this often while the source waits for
   * messages; two missed in a row make the source check its consumer and
   * recreate it where it stopped (a NATS server holding it went away).
   * Pull requests expire after five of them. Default 1000 ms, at least 500.
   */
  idleHeartbeatMs?: number;
  /** Reads on this connection instead of the worker's. */
  connection?: NatsConnection;
}

/** Default of `JetStreamSourceOptions.idleHeartbeatMs`. */
export const DEFAULT_SOURCE_IDLE_HEARTBEAT_MS = 1000;

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
  const { subject } = options;
  const heartbeatMs = Math.max(MIN_IDLE_HEARTBEAT_MS, options.idleHeartbeatMs ?? DEFAULT_SOURCE_IDLE_HEARTBEAT_MS);
  // The stream sequence of the last message handled (or skipped by the filter here).
  let last = positions.find((p) => p.input === input)?.offset ?? 0;
  // On servers whose filter can turn slow, read every subject and filter here.
  const filterHere = subject !== undefined && serverFiltersSlowly(nc.info?.version);
  for (let reopened = 0; ; reopened += 1) {
    const messages =
      reopened === 0
        ? await openConsumer(nc, options, last, filterHere, heartbeatMs, ctx)
        : await reopenConsumer(nc, options, last, filterHere, heartbeatMs, ctx);
    const read = watchStall(messages, options.stream, heartbeatMs, ctx);
    const stop = (): void => void messages.close().catch(() => {});
    ctx.signal.addEventListener('abort', stop, { once: true });
    try {
      const iterator = messages[Symbol.asyncIterator]();
      for (;;) {
        read.waiting(true);
        const next = await iterator.next();
        read.waiting(false);
        if (next.done === true || ctx.signal.aborted) break;
        const msg = next.value;
        // A consumer recreated where this one stopped may deliver again what was handled.
        if (msg.seq <= last) continue;
        last = msg.seq;
        if (filterHere && !subjectMatches(subject, msg.subject)) continue;
        yield { input, offset: msg.seq, value: msg };
      }
    } finally {
      ctx.signal.removeEventListener('abort', stop);
      stop();
    }
    if (!read.stalled() || ctx.signal.aborted) return;
    ctx.logger.warn(
      { stream: options.stream, after: last, waitedMs: read.stalledAfterMs() },
      'source consumer stalled: no message and no heartbeat; reading on from a new consumer',
    );
  }
}

/** The smallest heartbeat nats.js accepts. */
const MIN_IDLE_HEARTBEAT_MS = 500;

/** How long a reopened consumer keeps being retried before the source fails (and the job recovers). */
const REOPEN_FOR_MS = 60_000;
/**
 * Deadline of each request creating a reopened consumer. Until the server
 * that went away is known to be gone, the cluster may place the new
 * consumer on it and never answer; a short deadline tries again sooner.
 */
const REOPEN_REQUEST_MS = 2_000;
const REOPEN_BACKOFF = { initialDelayMs: 250, maxDelayMs: 2000, multiplier: 2, jitter: 0.2 };

/**
 * Watches a consumer for a stall: heartbeats missed while the source
 * waited for its next message longer than two heartbeats. (While the task
 * is busy with earlier messages no pull is outstanding and no heartbeat is
 * due; nats.js reports those as missed too.) A stall closes the messages,
 * which ends their iteration. nats.js would check the consumer itself, but
 * keeps asking for one whose server is gone for as long as it is gone.
 */
function watchStall(
  messages: ConsumerMessages,
  stream: string,
  heartbeatMs: number,
  ctx: TaskContext,
): { waiting(on: boolean): void; stalled(): boolean; stalledAfterMs(): number } {
  let waitingSince: number | undefined;
  let stalledAfterMs: number | undefined;
  void (async () => {
    for await (const event of messages.status()) {
      switch (event.type) {
        case 'heartbeats_missed': {
          const waited = waitingSince === undefined ? 0 : Date.now() - waitingSince;
          if (waited <= 2 * heartbeatMs || stalledAfterMs !== undefined) break;
          stalledAfterMs = waited;
          void messages.close().catch(() => {});
          break;
        }
        case 'consumer_not_found':
        case 'stream_not_found':
          ctx.logger.warn({ stream, event: event.type }, 'source consumer or stream not found; nats.js retries');
          break;
        case 'ordered_consumer_recreated':
          ctx.logger.info({ stream, consumer: event.name }, 'source consumer recreated by nats.js');
          break;
        default:
      }
    }
  })().catch(() => {
    // The status stream ends with the consumer.
  });
  return {
    waiting: (on) => void (waitingSince = on ? Date.now() : undefined),
    stalled: () => stalledAfterMs !== undefined,
    stalledAfterMs: () => stalledAfterMs ?? 0,
  };
}

/** `openConsumer` again after a stall, retried with backoff for up to `REOPEN_FOR_MS`. */
async function reopenConsumer(
  nc: NatsConnection,
  options: JetStreamSourceOptions,
  after: number,
  filterHere: boolean,
  heartbeatMs: number,
  ctx: TaskContext,
): Promise<ConsumerMessages> {
  const until = Date.now() + REOPEN_FOR_MS;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await openConsumer(nc, options, after, filterHere, heartbeatMs, ctx, REOPEN_REQUEST_MS);
    } catch (err) {
      const delayMs = backoffDelayMs(REOPEN_BACKOFF, attempt);
      if (ctx.signal.aborted || Date.now() + delayMs > until) throw err;
      ctx.logger.debug({ err, stream: options.stream, attempt }, 'source consumer not created yet; retrying');
      await sleep(delayMs, ctx.signal);
    }
  }
}

async function openConsumer(
  nc: NatsConnection,
  options: JetStreamSourceOptions,
  after: number,
  filterHere: boolean,
  heartbeatMs: number,
  ctx: TaskContext,
  requestTimeoutMs?: number,
): Promise<ConsumerMessages> {
  if (options.createStream === true) {
    await ensureStream(nc, { name: options.stream, subjects: [options.subject ?? `${options.stream}.>`] }, ctx.logger);
  }
  try {
    const js = jetstream(nc, requestTimeoutMs === undefined ? {} : { timeout: requestTimeoutMs });
    const consumer = await js.consumers.get(options.stream, {
      // A single subject as a string: servers before 2.10 know only one filter subject.
      ...(options.subject === undefined || filterHere ? {} : { filter_subjects: options.subject }),
      ...(after > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 } : {}),
    });
    // The server sends heartbeats while a pull waits; nats.js's default (15 s, noticed after 30 s) is far too slow for a source.
    return await consumer.consume({
      max_messages: options.batchSize ?? 256,
      idle_heartbeat: heartbeatMs,
      expires: 5 * heartbeatMs,
    });
  } catch (err) {
    throw fromNatsError(err, `read stream ${options.stream}`, { jobId: ctx.jobId, taskId: ctx.taskId });
  }
}
