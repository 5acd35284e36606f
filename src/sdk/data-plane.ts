/**
 * A worker's side of the data subjects: publishing records and barriers on
 * the edges of its tasks, and subscribing to the edges its tasks read.
 * Everything is published on one connection, so that records and barriers
 * of one edge stay in order.
 */
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/nats-core';
import { barrierHeaders, controlMessageCodecs } from '../bus/index.js';
import type { Barrier } from '../gen/ckpt/v1/Barrier.js';
import type { Logger } from '../log/index.js';
import { recordHeaders } from './record.js';
import { edgeSubject, type Edge } from './subjects.js';

/** Keys whose record headers are kept for reuse. */
const MAX_CACHED_KEY_HEADERS = 4096;

/** Receives one message of an edge a local task reads. */
export type EdgeHandler = (edge: Edge, msg: Msg) => void;

/** Publishes and subscribes the data subjects of one job. */
export class DataPlane {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #codec = controlMessageCodecs().barrier;
  readonly #subjects = new Map<string, string>();
  readonly #keyed = new Map<string, MsgHdrs>();
  #headersEpoch = -1;
  #plain: MsgHdrs = recordHeaders(0);

  /** `controlPrefix`: the job's control prefix from the welcome. */
  constructor(nc: NatsConnection, controlPrefix: string, logger: Logger) {
    this.#nc = nc;
    this.#prefix = controlPrefix;
    this.#logger = logger;
  }

  /** Publishes one record from `from` to `to` in `epoch`. */
  publishRecord(from: string, to: string, value: Uint8Array, epoch: number, key?: string): void {
    this.#nc.publish(this.#subject(from, to), value, { headers: this.#headers(epoch, key) });
  }

  /** Publishes `barrier` from `from` on every edge to `outputs`. */
  publishBarrier(from: string, outputs: readonly string[], barrier: Barrier & { epoch: number }): void {
    if (outputs.length === 0) return;
    const payload = this.#codec.encode({ ...barrier, fromTaskId: from });
    const headers = barrierHeaders(barrier.epoch);
    for (const to of outputs) this.#nc.publish(this.#subject(from, to), payload, { headers });
  }

  /**
   * Subscribes to every edge `(input, reader)` of `readers` (local task →
   * its inputs) and resolves once the server has registered them. Returns
   * the function that unsubscribes them all.
   */
  async subscribe(readers: ReadonlyMap<string, readonly string[]>, handle: EdgeHandler): Promise<() => void> {
    const subs: Subscription[] = [];
    for (const [reader, inputs] of readers) {
      for (const input of inputs) {
        const subject = this.#subject(input, reader);
        const edge: Edge = { from: input, to: reader };
        subs.push(this.#nc.subscribe(subject, { callback: (err, msg) => this.#deliver(edge, err, msg, handle) }));
      }
    }
    await this.#nc.flush();
    return () => {
      for (const sub of subs) sub.unsubscribe();
    };
  }

  /** One message of `edge`'s subscription: its subject is exactly the edge's subject, nothing to parse. */
  #deliver(edge: Edge, err: Error | null, msg: Msg, handle: EdgeHandler): void {
    if (err !== null) {
      this.#logger.warn({ err, edge }, 'data subscription failed');
      return;
    }
    try {
      handle(edge, msg);
    } catch (error) {
      this.#logger.warn({ err: error, edge }, 'data message dropped');
    }
  }

  #subject(from: string, to: string): string {
    const id = `${from}\u0000${to}`;
    let subject = this.#subjects.get(id);
    if (subject === undefined) {
      subject = edgeSubject(this.#prefix, from, to);
      this.#subjects.set(id, subject);
    }
    return subject;
  }

  /**
   * The headers of a record, shared by the records of one epoch and key:
   * `publish` only encodes them, and building them is a good part of the
   * cost of a small record.
   */
  #headers(epoch: number, key: string | undefined): MsgHdrs {
    if (this.#headersEpoch !== epoch) {
      this.#headersEpoch = epoch;
      this.#plain = recordHeaders(epoch);
      this.#keyed.clear();
    }
    if (key === undefined) return this.#plain;
    let headers = this.#keyed.get(key);
    if (headers === undefined) {
      // Many distinct keys: start over rather than hold on to all of them.
      if (this.#keyed.size >= MAX_CACHED_KEY_HEADERS) this.#keyed.clear();
      headers = recordHeaders(epoch, key);
      this.#keyed.set(key, headers);
    }
    return headers;
  }
}
