/**
 * A worker's side of the data subjects: publishing records and barriers on
 * the edges of its tasks, and subscribing to the edges its tasks read.
 * Everything is published on one connection, so that records and barriers
 * of one edge stay in order.
 *
 * Flow control (the writer's side): once the reader of an edge has sent a
 * credit for it in the current epoch, the edge is over its window when
 * `sent - processed >= window`; a producer with an output over its window
 * is `blocked` and takes no input until a credit makes room (records and
 * barriers are still published at once: only intake pauses). The reader's
 * side is `ReaderCredits` (flow-control.ts).
 */
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import {
  barrierHeaders,
  controlMessageCodecs,
  creditSubject,
  decodeCredit,
  encodeCredit,
  guardedCallback,
  jobSubjects,
  type Credit,
  type Drop,
} from '../bus/index.js';
import type { Barrier } from '../gen/ckpt/v1/Barrier.js';
import { subscribeData, type EdgeHandler, type SubscriptionErrorHandler } from '../worker-protocol/index.js';
import { recordHeaders } from './record.js';
import { edgeSubject } from './subjects.js';

/** Keys whose record headers are kept for reuse. */
const MAX_CACHED_KEY_HEADERS = 4096;

/** A credit's window is taken as at most this many records. */
export const MAX_CREDIT_WINDOW = 1 << 20;

/** The flow control state of one producer: how many of its outputs are over their window. */
export interface ProducerFlow {
  over: number;
}

/**
 * One outgoing edge: its subject, how many records it carried in `epoch`,
 * and its flow control (active while `creditEpoch === epoch`).
 */
interface OutEdge {
  readonly subject: string;
  readonly producer: ProducerFlow;
  epoch: number;
  sent: number;
  /** The epoch of the reader's credits; flow control applies only in it. */
  creditEpoch: number;
  /** Records the reader has processed (clamped to `sent`). */
  credited: number;
  window: number;
  over: boolean;
}

/** The outgoing edges of one producer, by reader. */
interface Producer extends ProducerFlow {
  readonly edges: Map<string, OutEdge>;
}

/** What the flow control of a data plane works with. */
export interface FlowHooks {
  /** The worker's epoch now: credits of any other are dropped. */
  epoch(): number;
  /** `producer` was blocked by a full output and is no longer. */
  onUnblocked(producer: string): void;
  /** A credit was dropped. */
  onDrop(drop: Drop): void;
}

/** Flow hooks of a plane that takes no credits: every credit is of another epoch. */
const NO_FLOW_HOOKS: FlowHooks = { epoch: () => -1, onUnblocked: () => undefined, onDrop: () => undefined };

/** Publishes and subscribes the data subjects of one job. */
export class DataPlane {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #onError: SubscriptionErrorHandler;
  readonly #flow: FlowHooks;
  readonly #codec = controlMessageCodecs().barrier;
  /** Outgoing edges by producer, then reader: no key string built per record. */
  readonly #out = new Map<string, Producer>();
  /** Credit subjects of the edges local tasks read, by reader then writer. */
  readonly #creditSubjects = new Map<string, Map<string, string>>();
  readonly #keyed = new Map<string, MsgHdrs>();
  #headersEpoch = -1;
  #plain: MsgHdrs = recordHeaders(0);

  /**
   * `controlPrefix`: the job's control prefix from the welcome; `onError`
   * hears what goes wrong in a subscription (nothing is thrown into NATS);
   * `flow`: what flow control works with (by default none: credits are dropped).
   */
  constructor(nc: NatsConnection, controlPrefix: string, onError: SubscriptionErrorHandler, flow = NO_FLOW_HOOKS) {
    this.#nc = nc;
    this.#prefix = controlPrefix;
    this.#onError = onError;
    this.#flow = flow;
  }

  /**
   * The flow control state of `producer`, the same object for its life:
   * while `over > 0`, one of its outputs is over its window and the task
   * takes no input.
   */
  flowOf(producer: string): ProducerFlow {
    return this.#producer(producer);
  }

  /** Publishes one record from `from` to `to` in `epoch`, and counts it on the edge. */
  publishRecord(from: string, to: string, value: Uint8Array, epoch: number, key?: string): void {
    const edge = this.#edge(from, to);
    if (epoch > edge.epoch) enterEpoch(edge, epoch);
    // A record of an older epoch is dropped by its reader, so it is not counted.
    if (epoch === edge.epoch) {
      edge.sent++;
      if (!edge.over && edge.creditEpoch === epoch && edge.sent - edge.credited >= edge.window) {
        edge.over = true;
        edge.producer.over++;
      }
    }
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

  /**
   * Subscribes to the credits of every output edge of `producers` (local
   * task → its outputs) and resolves once the server has registered them.
   * Returns the function that unsubscribes them all.
   */
  async subscribeCredits(producers: ReadonlyMap<string, readonly string[]>): Promise<() => void> {
    const subjects = jobSubjects(this.#prefix);
    const unsubscribe: (() => void)[] = [];
    for (const [from, outputs] of producers) {
      if (outputs.length === 0) continue;
      for (const to of outputs) this.#edge(from, to);
      const subject = subjects.outputCredits(from);
      const head = subject.length - 1;
      const callback = guardedCallback(
        (msg: Msg) => this.#onCredit(from, msg.subject.slice(head), msg.data),
        (err, msg) => this.#onError(err, subject, msg),
      );
      const sub = this.#nc.subscribe(subject, { callback });
      unsubscribe.push(() => sub.unsubscribe());
    }
    await this.#nc.flush();
    return () => {
      for (const u of unsubscribe) u();
    };
  }

  /** Publishes the credit of reader `to` for its input edge from `from`. */
  publishCredit(from: string, to: string, credit: Credit): void {
    let byWriter = this.#creditSubjects.get(to);
    if (byWriter === undefined) {
      byWriter = new Map();
      this.#creditSubjects.set(to, byWriter);
    }
    let subject = byWriter.get(from);
    if (subject === undefined) {
      subject = creditSubject(this.#prefix, from, to);
      byWriter.set(from, subject);
    }
    this.#nc.publish(subject, encodeCredit(credit));
  }

  /**
   * A new epoch: flow control lapses on every edge until its reader sends a
   * credit of that epoch (a reader that sends none is not waited for), and
   * no producer is blocked.
   */
  resetFlow(): void {
    for (const producer of this.#out.values()) {
      producer.over = 0;
      for (const edge of producer.edges.values()) {
        edge.over = false;
        edge.creditEpoch = -1;
      }
    }
  }

  /** A credit of edge `from` → `to` (`to` unchecked: taken from the subject). */
  #onCredit(from: string, to: string, data: Uint8Array): void {
    const edge = this.#out.get(from)?.edges.get(to);
    const label = `${from}->${to}`;
    if (edge === undefined) {
      this.#flow.onDrop({ kind: 'credit', reason: 'other-sender', edge: label });
      return;
    }
    const decoded = decodeCredit(data);
    if ('error' in decoded) {
      this.#flow.onDrop({ kind: 'credit', reason: 'undecodable', edge: label, error: decoded.error });
      return;
    }
    const { epoch, processed, window } = decoded.credit;
    if (epoch !== this.#flow.epoch() || epoch < edge.epoch) {
      this.#flow.onDrop({ kind: 'credit', reason: 'other-epoch', epoch, edge: label });
      return;
    }
    const wasBlocked = edge.producer.over > 0;
    if (epoch > edge.epoch) enterEpoch(edge, epoch);
    if (edge.creditEpoch !== epoch) {
      edge.creditEpoch = epoch;
      edge.credited = 0;
    }
    // A credit above what was sent is forged or confused: it counts as what was sent.
    edge.credited = Math.max(edge.credited, Math.min(processed, edge.sent));
    edge.window = Math.min(window, MAX_CREDIT_WINDOW);
    const over = edge.sent - edge.credited >= edge.window;
    if (over !== edge.over) {
      edge.over = over;
      edge.producer.over += over ? 1 : -1;
    }
    if (wasBlocked && edge.producer.over === 0) this.#flow.onUnblocked(from);
  }

  #producer(from: string): Producer {
    let producer = this.#out.get(from);
    if (producer === undefined) {
      producer = { edges: new Map(), over: 0 };
      this.#out.set(from, producer);
    }
    return producer;
  }

  #edge(from: string, to: string): OutEdge {
    const producer = this.#producer(from);
    let edge = producer.edges.get(to);
    if (edge === undefined) {
      edge = {
        subject: edgeSubject(this.#prefix, from, to),
        producer,
        epoch: -1,
        sent: 0,
        creditEpoch: -1,
        credited: 0,
        window: MAX_CREDIT_WINDOW,
        over: false,
      };
      producer.edges.set(to, edge);
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

/** `edge` carries records of `epoch` from now on: its count starts over and a full window of an older epoch no longer blocks. */
function enterEpoch(edge: OutEdge, epoch: number): void {
  edge.epoch = epoch;
  edge.sent = 0;
  if (edge.over) {
    edge.over = false;
    edge.producer.over--;
  }
}
