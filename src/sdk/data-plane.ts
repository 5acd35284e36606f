/**
 * A worker's side of the data subjects: publishing records and barriers on
 * the edges of its tasks, and subscribing to the edges its tasks read.
 * Everything is published on one connection, so that records and barriers
 * of one edge stay in order.
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import { barrierHeaders, controlMessageCodecs, jobSubjects } from '../bus/index.js';
import type { Barrier } from '../gen/ckpt/v1/Barrier.js';
import { subscribeData, type EdgeHandler, type SubscriptionErrorHandler } from '../worker-protocol/index.js';
import { recordHeaders } from './record.js';
import { edgeSubject } from './subjects.js';

/** Keys whose record headers are kept for reuse. */
const MAX_CACHED_KEY_HEADERS = 4096;

/** One outgoing edge: its subject, and how many records it carried in `epoch`. */
interface OutEdge {
  readonly subject: string;
  epoch: number;
  sent: number;
}

/** Publishes and subscribes the data subjects of one job. */
export class DataPlane {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #onError: SubscriptionErrorHandler;
  readonly #codec = controlMessageCodecs().barrier;
  /** Outgoing edges by producer, then reader: no key string built per record. */
  readonly #out = new Map<string, Map<string, OutEdge>>();
  readonly #keyed = new Map<string, MsgHdrs>();
  #headersEpoch = -1;
  #plain: MsgHdrs = recordHeaders(0);

  /**
   * `controlPrefix`: the job's control prefix from the welcome; `onError`
   * hears what goes wrong in a subscription (nothing is thrown into NATS).
   */
  constructor(nc: NatsConnection, controlPrefix: string, onError: SubscriptionErrorHandler) {
    this.#nc = nc;
    this.#prefix = controlPrefix;
    this.#onError = onError;
  }

  /** Publishes one record from `from` to `to` in `epoch`, and counts it on the edge. */
  publishRecord(from: string, to: string, value: Uint8Array, epoch: number, key?: string): void {
    const edge = this.#edge(from, to);
    if (epoch > edge.epoch) {
      edge.epoch = epoch;
      edge.sent = 0;
    }
    // A record of an older epoch is dropped by its reader, so it is not counted.
    if (epoch === edge.epoch) edge.sent++;
    this.#nc.publish(edge.subject, value, { headers: this.#headers(epoch, key) });
  }

  /**
   * Publishes `barrier` from `from` on every edge to `outputs`, each with
   * the number of records the edge carried before it in the barrier's epoch
   * (`Barrier.records`), which lets the reader detect lost records.
   */
  publishBarrier(from: string, outputs: readonly string[], barrier: Barrier & { epoch: number }): void {
    const headers = barrierHeaders(barrier.epoch);
    for (const to of outputs) {
      const edge = this.#edge(from, to);
      const records = edge.epoch === barrier.epoch ? edge.sent : 0;
      const payload = this.#codec.encode({ ...barrier, fromTaskId: from, records });
      this.#nc.publish(edge.subject, payload, { headers });
    }
  }

  /**
   * Subscribes to every edge `(input, reader)` of `readers` (local task →
   * its inputs), as every worker does (`subscribeData`), and resolves once
   * the server has registered them. Returns the function that unsubscribes
   * them all.
   */
  subscribe(readers: ReadonlyMap<string, readonly string[]>, handle: EdgeHandler): Promise<() => void> {
    return subscribeData(this.#nc, jobSubjects(this.#prefix), readers, handle, this.#onError);
  }

  #edge(from: string, to: string): OutEdge {
    let byReader = this.#out.get(from);
    if (byReader === undefined) {
      byReader = new Map();
      this.#out.set(from, byReader);
    }
    let edge = byReader.get(to);
    if (edge === undefined) {
      edge = { subject: edgeSubject(this.#prefix, from, to), epoch: -1, sent: 0 };
      byReader.set(to, edge);
    }
    return edge;
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
