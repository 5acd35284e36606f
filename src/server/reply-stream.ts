/**
 * The replies of a server stream (a worker's session, a watcher), bounded:
 * grpc-js queues every write of a stream whose client does not read, so a
 * client that stops reading would make the coordinator hold its replies
 * without bound. A `ReplyStream` counts the approximate bytes written and
 * not yet taken by the transport; past the limit it stops writing, ends the
 * stream with LIMIT_REACHED and resets it.
 */
import { constants as http2 } from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import { encodedReply } from '../coordinator/reply-encoding.js';
import { statusError } from './handlers.js';

/** A grpc-js server stream we write replies to. */
export type WritableCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Replies written to a stream, with the unread bytes bounded. */
export interface ReplyStream<T> {
  /** Writes a reply, unless the stream ended or is over its limit (then it ends). */
  send(message: T): void;
  /** Ends the stream, with an error status when given. */
  end(error?: CkptError): void;
  /** True once the stream ended, was cancelled or overflowed. */
  readonly ended: boolean;
  /** Approximate bytes written and not yet taken by the transport. */
  readonly unreadBytes: number;
}

/** Wraps `call` so that at most about `maxUnreadBytes` of replies wait unread. */
export function replyStream<T>(call: WritableCall, maxUnreadBytes: number, what: string): ReplyStream<T> {
  let unread = 0;
  let overflowed = false;
  const closed = (): boolean => overflowed || call.writableEnded || call.destroyed || call.cancelled;
  const end = (error?: CkptError): void => {
    if (call.writableEnded || call.destroyed) return;
    if (error === undefined) call.end();
    else call.emit('error', statusError(error));
  };
  return {
    send(message) {
      if (closed()) return;
      const bytes = encodedReply(message)?.length ?? approxEncodedBytes(message, maxUnreadBytes);
      if (unread + bytes > maxUnreadBytes) {
        overflowed = true;
        end(
          new CkptError(
            'LIMIT_REACHED',
            `${what}: ${unread} bytes of replies wait unread, and the limit is ${maxUnreadBytes}; read your stream`,
            { retryable: true },
          ),
        );
        // The status waits behind the unread replies; a reset frees them now.
        resetStream(call);
        return;
      }
      unread += bytes;
      call.write(message, () => {
        unread -= bytes;
      });
    },
    end,
    get ended() {
      return closed();
    },
    get unreadBytes() {
      return unread;
    },
  };
}

/**
 * Resets the HTTP/2 stream under a grpc-js call (RST_STREAM CANCEL), which
 * drops what it queued. grpc-js offers no call for this; its call objects
 * keep the stream as `stream`, reached through `call` and `nextCall`. When
 * the layout differs, nothing happens: the stream then stays until its
 * client goes, holding no more than the limit.
 */
function resetStream(call: WritableCall): void {
  let layer: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 4 && typeof layer === 'object' && layer !== null; depth += 1) {
    const stream = (layer as { stream?: { close?: (code: number) => void; closed?: boolean } }).stream;
    if (stream !== undefined && typeof stream.close === 'function') {
      if (stream.closed !== true) stream.close(http2.NGHTTP2_CANCEL);
      return;
    }
    layer = (layer as { nextCall?: unknown }).nextCall;
  }
}

/**
 * Roughly how many bytes `value` takes encoded: string lengths, 8 per
 * number, and a few per field. Stops counting past `budget`.
 */
export function approxEncodedBytes(value: unknown, budget: number): number {
  let total = 0;
  const walk = (v: unknown): void => {
    if (total > budget) return;
    if (typeof v === 'string') total += v.length + 2;
    else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') total += 8;
    else if (v instanceof Uint8Array) total += v.length + 2;
    else if (Array.isArray(v)) for (const item of v) walk(item);
    else if (typeof v === 'object' && v !== null) {
      for (const item of Object.values(v)) {
        total += 2;
        walk(item);
      }
    }
  };
  walk(value);
  return total;
}

/**
 * `service` with response serializers that write a reply encoded ahead
 * (`coordinator/reply-encoding.ts`) as its bytes, and encode any other
 * reply as before.
 */
export function withEncodedReplies(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const wrapped: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    const serialize = method.responseSerialize;
    wrapped[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => encodedReply(value) ?? serialize(value),
    };
  }
  return wrapped;
}
