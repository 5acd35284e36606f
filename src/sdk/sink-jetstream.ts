/**
 * An exactly-once sink task writing to a JetStream stream. Records of a
 * checkpoint interval are staged in the task's snapshot, and published only
 * when a checkpoint that includes them completes (two-phase commit), each
 * with a message id `<job>/<task>/<checkpoint>/<index>` so that the stream
 * drops a re-publication after a recovery. Nothing is visible in the stream
 * before its checkpoint completes.
 *
 * A completed checkpoint's records are published in the background, one
 * checkpoint after the other, while the task goes on taking records in:
 * waiting for the stream's acknowledgements would hold up the records and
 * barriers queued behind the completion. A group stays in the staging, and
 * so in every snapshot taken meanwhile, until the stream has acknowledged
 * all of it; a restore publishes it again (the ids drop what arrived). A
 * publication that fails for good fails the task, and the job recovers.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { fromNatsError } from '../bus/index.js';
import { backoffDelayMs } from '../core/backoff.js';
import { sleep } from '../worker-protocol/sleep.js';
import { publishToStream } from './jetstream-publish.js';
import { ensureStream } from './jetstream-stream.js';
import { payloadBytes } from './record.js';
import { SinkStaging } from './sink-staging.js';
import type { DataRecord, SnapshotContext, Task, TaskContext } from './task.js';

/** Options of `jetStreamSink`. */
export interface JetStreamSinkOptions {
  /** The stream to write to. */
  stream: string;
  /** The subject records are published on; must be a subject of the stream. */
  subject: string;
  /**
   * Creates the stream (subject `subject`, duplicate window
   * `duplicateWindowMs`) when it does not exist. Default true.
   */
  createStream?: boolean;
  /**
   * Duplicate window of a created stream; must exceed the longest time
   * between a checkpoint's completion and a re-publication after a
   * recovery. Default 10 minutes.
   */
  duplicateWindowMs?: number;
  /**
   * A commit fails when publications wait for their acknowledgement and
   * none arrives for this long. Default 5000 ms.
   */
  publishTimeoutMs?: number;
  /**
   * A commit whose publications no stream answered (the stream's leader is
   * being elected after a NATS server restart) or that timed out is
   * published again, all of it (the message ids make that safe), with
   * backoff for up to this long before the task fails. Default 15000 ms.
   */
  retryForMs?: number;
  /** Most publications waiting for their acknowledgement at once. Default 256. */
  maxInFlight?: number;
  /** Turns a record into the published payload. Default: the record's value. */
  map?: (record: DataRecord) => string | Uint8Array;
  /** Publishes on this connection instead of the worker's. */
  connection?: NatsConnection;
}

/** Default of `JetStreamSinkOptions.duplicateWindowMs`: 10 minutes. */
export const DEFAULT_SINK_DUPLICATE_WINDOW_MS = 10 * 60 * 1000;

/** Default of `JetStreamSinkOptions.publishTimeoutMs`. */
export const DEFAULT_SINK_PUBLISH_TIMEOUT_MS = 5000;

/** Default of `JetStreamSinkOptions.retryForMs`. */
export const DEFAULT_SINK_RETRY_FOR_MS = 15_000;

/** Default of `JetStreamSinkOptions.maxInFlight`. */
export const DEFAULT_SINK_MAX_IN_FLIGHT = 256;

/** The message id of record `index` of checkpoint `checkpointId` of a sink task. */
export function sinkMessageId(jobId: string, taskId: string, checkpointId: number, index: number): string {
  return `${jobId}/${taskId}/${checkpointId}/${index}`;
}

/** A `Task` writing exactly once to `options.stream`. Use one instance per task. */
export function jetStreamSink(options: JetStreamSinkOptions): Task {
  let staging = new SinkStaging();
  const ensure = streamEnsurer(options);
  const commit = async (upTo: number, ctx: TaskContext, from: SinkStaging): Promise<void> => {
    const groups = from.committable(upTo);
    if (groups.length === 0) return;
    await ensure(ctx);
    for (const [checkpointId, records] of groups) {
      if (ctx.signal.aborted) return;
      await publishGroup(options, ctx, from.origin ?? ctx.jobId, checkpointId, records);
      from.drop(checkpointId);
    }
  };
  // The publications in the background, in completion order.
  let publishing: Promise<void> = Promise.resolve();
  return {
    process(record: DataRecord): void {
      staging.stage(copy(options.map === undefined ? record.value : payloadBytes(options.map(record))));
    },
    snapshot(ctx: SnapshotContext): Uint8Array {
      staging.seal(ctx.checkpointId);
      // Nothing pending: an empty snapshot, which the runtime does not store.
      return staging.pendingIds.length === 0 ? new Uint8Array(0) : staging.encode(ctx.jobId);
    },
    async restore(bytes: Uint8Array | undefined, ctx: TaskContext): Promise<void> {
      staging = bytes === undefined ? new SinkStaging() : SinkStaging.decode(bytes);
      // The ended epoch's publications stop at their context's signal; this one's start afresh.
      publishing = Promise.resolve();
      await ensure(ctx);
      // Everything in a restored snapshot belongs to a committed checkpoint; it is published
      // under the ids of the job that took the snapshot (a savepoint's, possibly), the rest under ours.
      await commit(Number.MAX_SAFE_INTEGER, ctx, staging);
      staging.origin = undefined;
    },
    onCheckpointComplete(checkpointId, ctx): void {
      const from = staging;
      publishing = publishing
        .then(() => commit(checkpointId, ctx, from))
        .catch((err: unknown) => {
          if (!ctx.signal.aborted) ctx.fail(err);
        });
    },
  };
}

/** Makes sure the sink's stream exists, once (again after a failure). */
function streamEnsurer(options: JetStreamSinkOptions): (ctx: TaskContext) => Promise<void> {
  let ensured: Promise<void> | undefined;
  return (ctx) => {
    if (options.createStream === false) return Promise.resolve();
    const spec = {
      name: options.stream,
      subjects: [options.subject],
      duplicateWindowMs: options.duplicateWindowMs ?? DEFAULT_SINK_DUPLICATE_WINDOW_MS,
    };
    ensured ??= ensureStream(options.connection ?? ctx.nats, spec, ctx.logger).catch((err: unknown) => {
      ensured = undefined;
      throw err;
    });
    return ensured;
  };
}

async function publishGroup(
  options: JetStreamSinkOptions,
  ctx: TaskContext,
  jobId: string,
  checkpointId: number,
  records: readonly Uint8Array[],
): Promise<void> {
  const until = Date.now() + (options.retryForMs ?? DEFAULT_SINK_RETRY_FOR_MS);
  for (let attempt = 0; ; attempt += 1) {
    try {
      await publishToStream(options.connection ?? ctx.nats, {
        subject: options.subject,
        payloads: records,
        msgId: (index) => sinkMessageId(jobId, ctx.taskId, checkpointId, index),
        maxInFlight: options.maxInFlight ?? DEFAULT_SINK_MAX_IN_FLIGHT,
        timeoutMs: options.publishTimeoutMs ?? DEFAULT_SINK_PUBLISH_TIMEOUT_MS,
        signal: ctx.signal,
      });
      return;
    } catch (err) {
      const delayMs = backoffDelayMs(SINK_RETRY_BACKOFF, attempt);
      if (!isTransient(err) || ctx.signal.aborted || Date.now() + delayMs > until) {
        throw fromNatsError(err, `publish checkpoint ${checkpointId} to ${options.stream}`, {
          jobId: ctx.jobId,
          taskId: ctx.taskId,
          checkpointId,
        });
      }
      ctx.logger.debug({ err, checkpointId, attempt }, 'sink publication not acknowledged; publishing again');
      await sleep(delayMs, ctx.signal);
    }
  }
}

/** Backoff between publications of one commit: 250 ms doubling to 2 s. */
const SINK_RETRY_BACKOFF = { initialDelayMs: 250, maxDelayMs: 2000, multiplier: 2, jitter: 0.2 };

/** True for a publication no stream answered or acknowledged in time: worth publishing again. */
function isTransient(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /no stream answered|no acknowledgement within/.test(message);
}

function copy(bytes: Uint8Array): Uint8Array {
  return bytes.slice();
}
