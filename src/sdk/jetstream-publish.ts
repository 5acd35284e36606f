/**
 * Publishing a run of messages to a JetStream stream with a window of
 * publications in flight. All of them share one reply subscription, and the
 * stream acknowledges message `i` on `<inbox>.<i>`: no request object,
 * timer or error object per message, as a request per message would cost.
 * Messages of one connection reach the stream in the order they are
 * published, so the stream keeps the order of `payloads`.
 */
import { JetStreamApiError, PubHeaders, type ApiError } from '@nats-io/jetstream';
import {
  createInbox,
  MsgHdrsImpl,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';
import { abortReason } from '../worker-protocol/sleep.js';

/** A run of messages to publish. */
export interface StreamPublication {
  /** The subject, one of the stream's. */
  subject: string;
  payloads: readonly Uint8Array[];
  /** The message id of `payloads[index]`, for the stream's duplicate detection. */
  msgId(index: number): string;
  /** Most publications waiting for their acknowledgement at once (at least 1). */
  maxInFlight: number;
  /** Fails when publications wait and none is acknowledged for this long. */
  timeoutMs: number;
  /** Fails with the signal's reason when it aborts. */
  signal?: AbortSignal;
}

/** What an acknowledgement of the stream carries. */
interface PubAck {
  stream?: string;
  error?: ApiError;
}

/**
 * Publishes every payload and resolves once the stream has acknowledged
 * each (a duplicate counts: the stream has it). Rejects with the first
 * refusal, the timeout, a closed connection or the signal's reason;
 * messages published before that may be in the stream.
 */
export function publishToStream(nc: NatsConnection, p: StreamPublication): Promise<void> {
  if (p.payloads.length === 0) return Promise.resolve();
  if (p.signal?.aborted === true) return Promise.reject(abortReason(p.signal));
  return new Promise((resolve, reject) => new Publisher(nc, p, resolve, reject).start());
}

class Publisher {
  readonly #nc: NatsConnection;
  readonly #p: StreamPublication;
  readonly #inbox: string;
  readonly #acked: Uint8Array;
  readonly #resolve: () => void;
  readonly #reject: (err: unknown) => void;
  readonly #onAbort = (): void => this.#finish(abortReason(this.#p.signal));
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sent = 0;
  #done = 0;
  #settled = false;

  constructor(nc: NatsConnection, p: StreamPublication, resolve: () => void, reject: (err: unknown) => void) {
    this.#nc = nc;
    this.#p = p;
    this.#inbox = createInbox(inboxPrefixOf(nc));
    this.#acked = new Uint8Array(p.payloads.length);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  start(): void {
    try {
      const sub = this.#nc.subscribe(`${this.#inbox}.*`, { callback: (err, msg) => this.#onReply(err, msg) });
      this.#sub = sub;
      const closed = (): void => this.#finish(new Error('the reply subscription closed'));
      void sub.closed.then(closed, closed);
      this.#timer = setTimeout(() => this.#onTimeout(), this.#p.timeoutMs);
      this.#p.signal?.addEventListener('abort', this.#onAbort, { once: true });
      this.#fill();
    } catch (err) {
      this.#finish(err);
    }
  }

  /** Publishes until the window is full or everything is sent. */
  #fill(): void {
    const { payloads, subject } = this.#p;
    const window = Math.max(1, this.#p.maxInFlight);
    while (this.#sent < payloads.length && this.#sent - this.#done < window && !this.#settled) {
      const index = this.#sent;
      const headers = msgIdHeaders(this.#p.msgId(index));
      this.#nc.publish(subject, payloads[index], { reply: `${this.#inbox}.${index}`, headers });
      this.#sent += 1;
    }
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (this.#settled) return;
    try {
      if (err !== null) throw err;
      const index = Number(msg.subject.slice(this.#inbox.length + 1));
      if (!Number.isInteger(index) || index < 0 || index >= this.#sent) return;
      checkAck(msg, index);
      if (this.#acked[index] === 1) return;
      this.#acked[index] = 1;
      this.#done += 1;
      this.#timer?.refresh();
      if (this.#done === this.#p.payloads.length) this.#finish();
      else this.#fill();
    } catch (error) {
      this.#finish(error);
    }
  }

  #onTimeout(): void {
    const waiting = this.#sent - this.#done;
    this.#finish(new Error(`no acknowledgement within ${this.#p.timeoutMs} ms (${waiting} publications waiting)`));
  }

  #finish(err?: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#p.signal?.removeEventListener('abort', this.#onAbort);
    this.#sub?.unsubscribe();
    if (err === undefined) this.#resolve();
    else this.#reject(err);
  }
}

const encoder = new TextEncoder();

/**
 * The headers of one publication: its message id alone. nats.js's
 * `publish` only encodes them, and building them key by key (canonical
 * key, validation, then the text) was a good part of the cost of a small
 * publication: this writes the same bytes as nats.js would, at once.
 */
class MsgIdHeaders extends MsgHdrsImpl {
  readonly #id: string;

  constructor(id: string) {
    super();
    if (/[\r\n]/.test(id)) throw new Error(`message id ${JSON.stringify(id)}: contains a line break`);
    this.#id = id.trim();
    this.headers.set(PubHeaders.MsgIdHdr, [this.#id]);
  }

  override encode(): Uint8Array {
    const values = this.headers.get(PubHeaders.MsgIdHdr);
    const only = this.headers.size === 1 && values?.length === 1 && values[0] === this.#id;
    return only ? encoder.encode(`NATS/1.0\r\n${PubHeaders.MsgIdHdr}: ${this.#id}\r\n\r\n`) : super.encode();
  }
}

/** The headers of a publication with message id `id` (no line break). */
export function msgIdHeaders(id: string): MsgHdrs {
  return new MsgIdHeaders(id);
}

/**
 * The start of a successful acknowledgement as nats-server writes it
 * (`{"stream":"<name>","seq":<n>...}`; an error, `error`, comes first).
 */
const ACK_START = encoder.encode('{"stream":"');
const QUOTE = 0x22;

/** True when `data` starts as a successful acknowledgement with a non-empty stream name. */
function plainAck(data: Uint8Array): boolean {
  if (data.length <= ACK_START.length) return false;
  for (let i = 0; i < ACK_START.length; i++) if (data[i] !== ACK_START[i]) return false;
  return data[ACK_START.length] !== QUOTE;
}

/** Throws when `msg` is not the stream's acknowledgement of message `index`. */
function checkAck(msg: Msg, index: number): void {
  // An acknowledgement has no headers; a status (no responders, say) does.
  if (headerless(msg) && plainAck(msg.data)) return;
  const status = msg.headers;
  if (status?.hasError === true || (msg.data.length === 0 && status !== undefined)) {
    throw new Error(`message ${index}: no stream answered (${status.code} ${status.description})`);
  }
  const ack = msg.json<PubAck>();
  if (ack.error !== undefined) throw new JetStreamApiError(ack.error);
  if (typeof ack.stream !== 'string' || ack.stream === '') throw new Error(`message ${index}: invalid acknowledgement`);
}

/** True when `msg` has no header block, known without nats.js decoding one. */
function headerless(msg: Msg): boolean {
  const hdr = (msg as unknown as { _msg?: { hdr?: unknown } })._msg?.hdr;
  return typeof hdr === 'number' ? hdr < 0 : msg.headers === undefined;
}

/**
 * The connection's inbox prefix (`natsAuth.inboxPrefix`), where its user
 * may read replies: a worker's user may subscribe to its job's inboxes
 * alone (`_INBOX_<job>.>`). nats.js keeps it in the connection's options,
 * which its public interface does not show; the default is `_INBOX`.
 */
function inboxPrefixOf(nc: NatsConnection): string | undefined {
  const prefix = (nc as { options?: { inboxPrefix?: unknown } }).options?.inboxPrefix;
  return typeof prefix === 'string' && prefix !== '' ? prefix : undefined;
}
