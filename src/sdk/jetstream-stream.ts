/**
 * Making sure a JetStream stream exists before a source reads it or a sink
 * writes to it.
 */
import { jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { millis, nanos, type NatsConnection } from '@nats-io/nats-core';
import { fromNatsError } from '../bus/index.js';
import type { Logger } from '../log/index.js';

/** The stream to make sure of. */
export interface StreamSpec {
  name: string;
  /** Subjects of a stream that is created. */
  subjects: string[];
  /** Duplicate window of a stream that is created; warns when an existing one has a shorter window. */
  duplicateWindowMs?: number;
}

/**
 * Creates the stream unless it exists. Rejects with a `CkptError`
 * (UNAVAILABLE when JetStream cannot be reached).
 */
export async function ensureStream(nc: NatsConnection, spec: StreamSpec, logger: Logger): Promise<void> {
  try {
    const jsm = await jetstreamManager(nc);
    try {
      const info = await jsm.streams.info(spec.name);
      const windowMs = millis(info.config.duplicate_window ?? 0);
      if (spec.duplicateWindowMs !== undefined && windowMs < spec.duplicateWindowMs) {
        logger.warn(
          { stream: spec.name, windowMs, wantedMs: spec.duplicateWindowMs },
          'stream duplicate window is shorter than wanted; re-published records may be duplicated',
        );
      }
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== JetStreamApiCodes.StreamNotFound) throw err;
    }
    await jsm.streams.add({
      name: spec.name,
      subjects: spec.subjects,
      ...(spec.duplicateWindowMs === undefined ? {} : { duplicate_window: nanos(spec.duplicateWindowMs) }),
    });
    logger.info({ stream: spec.name, subjects: spec.subjects }, 'stream created');
  } catch (err) {
    throw fromNatsError(err, `ensure stream ${spec.name}`);
  }
}
