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
import { edgeSubject, taskOfEdgeSubject, type Edge } from './subjects.js';

/** Receives one message of an edge a local task reads. */
export type EdgeHandler = (edge: Edge, msg: Msg) => void;

/** Publishes and subscribes the data subjects of one job. */
export class DataPlane {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #codec = controlMessageCodecs().barrier;
  readonly #subjects = new Map<string, string>();
  #plain: { epoch: number; headers: MsgHdrs } | undefined;

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
        subs.push(this.#nc.subscribe(subject, { callback: (err, msg) => this.#deliver(subject, err, msg, handle) }));
      }
    }
    await this.#nc.flush();
    return () => {
      for (const sub of subs) sub.unsubscribe();
    };
  }

  #deliver(subject: string, err: Error | null, msg: Msg, handle: EdgeHandler): void {
    if (err !== null) {
      this.#logger.warn({ err, subject }, 'data subscription failed');
      return;
    }
    const edge = taskOfEdgeSubject(this.#prefix, msg.subject);
    if (edge === undefined) return;
    try {
      handle(edge, msg);
    } catch (error) {
      this.#logger.warn({ err: error, subject }, 'data message dropped');
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

  #headers(epoch: number, key: string | undefined): MsgHdrs {
    if (key !== undefined) return recordHeaders(epoch, key);
    if (this.#plain?.epoch !== epoch) this.#plain = { epoch, headers: recordHeaders(epoch) };
    return this.#plain.headers;
  }
}
