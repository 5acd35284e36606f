/**
 * The `Attach` stream: a worker's session. The first message must be a
 * hello, within the hello timeout; heartbeats follow. A standby sends only
 * heartbeats until it is attached. The session ends when the worker ends or
 * cancels the stream, or when the coordinator ends it (heartbeat timeout,
 * shutdown, replies left unread), and then the worker's tasks detach. A bad
 * message ends the stream with its reason; a refused acknowledgement or
 * decline is answered and does not.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AttachRequest__Output } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { SessionResult } from '../gen/ckpt/v1/SessionResult.js';
import { CkptError } from '../core/errors.js';
import { checkCount } from '../core/limits.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { SessionChannel } from '../coordinator/sessions.js';
import type { StandbyTicket } from '../coordinator/standbys.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import type { AccessControl, Caller } from './access-control.js';
import { requireDecoded } from './handlers.js';
import type { Logger } from '../log/index.js';
import { replyStream } from './reply-stream.js';
import { adoptTaskBytes } from '../store/manifest-encoding.js';
import { decodeAcknowledgement, type DecodedAcknowledgement } from './ack-decoder.js';

type AttachCall = grpc.ServerDuplexStream<AttachRequest__Output, AttachResponse>;

/** The members of `AttachRequest.body`. */
const BODIES = ['hello', 'heartbeat', 'ready', 'failure', 'acknowledge', 'decline', 'stateListing'] as const;

/** How the `Attach` handler bounds a stream, and where it logs. */
export interface AttachLimits {
  logger: Logger;
  /** A stream without a hello for this long is ended. */
  helloTimeoutMs: number;
  /** Replies a worker may leave unread, in bytes, before its session is ended. */
  maxUnreadReplyBytes: number;
}

/**
 * The result of an acknowledgement or decline sent in a session: its
 * figures, or the refusal's reason. A refusal is answered; it does not end
 * the session.
 */
function resultOf(requestId: unknown, run: () => Omit<SessionResult, 'requestId'> | void): SessionResult {
  let id = 0;
  try {
    id = checkCount(requestId ?? 0, 'request_id');
    return { requestId: id, ...(run() ?? {}) };
  } catch (err) {
    const error = CkptError.from(err);
    return {
      requestId: id,
      errorReason: `ERROR_REASON_${error.reason}`,
      errorMessage: error.message,
      retryable: error.retryable,
    };
  }
}

/** One stream's state: nothing yet, a waiting standby, or a session of a coordinator. */
type Phase =
  | { kind: 'new' }
  | { kind: 'standby'; ticket: StandbyTicket }
  | { kind: 'session'; sessionId: string; coordinator: Coordinator }
  | { kind: 'ended' };

/**
 * The bidirectional `Attach` handler. The hello binds the session to the
 * leader's coordinator of the moment; that coordinator ends the session
 * when it stops.
 */
export function attachHandler(
  coordinators: CoordinatorProvider,
  access: AccessControl,
  limits: AttachLimits,
): grpc.handleBidiStreamingCall<AttachRequest__Output, AttachResponse> {
  return (call) => new AttachStream(call, coordinators, access, limits).run();
}

class AttachStream {
  private phase: Phase = { kind: 'new' };
  private readonly channel: SessionChannel;
  private helloTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly call: AttachCall,
    private readonly coordinators: CoordinatorProvider,
    private readonly access: AccessControl,
    private readonly limits: AttachLimits,
  ) {
    const replies = replyStream<AttachResponse>(call, limits.maxUnreadReplyBytes, 'the session');
    this.channel = { send: (m) => replies.send(m), end: (e) => replies.end(e) };
  }

  /** Who opened the stream; a session is for a job it may run the tasks of. */
  private caller: Caller | undefined;

  run(): void {
    try {
      this.caller = this.access.identify(this.call);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.helloTimer = setTimeout(() => {
      const ms = this.limits.helloTimeoutMs;
      this.fail(new CkptError('UNAVAILABLE', `no hello within ${ms} ms of the stream's start`, { retryable: true }));
    }, this.limits.helloTimeoutMs);
    this.call.on('data', (message: AttachRequest__Output) => {
      try {
        this.onMessage(message);
      } catch (err) {
        this.fail(err);
      }
    });
    this.call.on('end', () => {
      // grpc-js emits 'end' before 'cancelled' when the client cancels; decide a tick later.
      setImmediate(() => {
        if (this.call.cancelled) return;
        this.close('the worker ended its session');
        this.channel.end();
      });
    });
    this.call.on('cancelled', () => this.close('the worker cancelled its session'));
    this.call.on('error', () => this.close('the session stream failed'));
    this.call.on('close', () => this.close('the session stream closed'));
  }

  private onMessage(message: AttachRequest__Output): void {
    requireDecoded(message);
    const bodies = BODIES.filter((b) => message[b] != null);
    if (bodies.length > 1) {
      // protobuf.js keeps every member of a oneof on the wire; protobuf says the last wins: refuse the doubt.
      throw new CkptError('MALFORMED', `the message has several bodies: ${bodies.join(', ')}`);
    }
    const phase = this.phase;
    switch (phase.kind) {
      case 'new':
        return this.onHello(message);
      case 'standby':
        if (message.heartbeat == null)
          throw new CkptError('MALFORMED', 'a standby sends only heartbeats before its welcome');
        checkCount(message.heartbeat.sentAtMs ?? 0, 'heartbeat.sent_at_ms');
        phase.ticket.heard();
        return;
      case 'session':
        return this.onSessionMessage(phase.coordinator, phase.sessionId, message);
      case 'ended':
        return;
    }
  }

  private onHello(message: AttachRequest__Output): void {
    if (message.hello == null) throw new CkptError('MALFORMED', 'the first message of a session must be a hello');
    clearTimeout(this.helloTimer);
    // Fails closed: a stream that was not identified never gets this far, and would be refused if it did.
    if (this.caller === undefined) throw new CkptError('UNAUTHENTICATED', 'the stream has no identified caller');
    this.access.require(this.caller, 'work', message.hello.jobId);
    const coordinator = this.coordinators.current(message.hello.jobId);
    if (!message.hello.standby) {
      const session = coordinator.sessions.open(message.hello, this.channel);
      this.phase = { kind: 'session', sessionId: session.sessionId, coordinator };
      return;
    }
    const offer = coordinator.sessions.offerStandby(message.hello, this.channel, (session) => {
      this.phase = { kind: 'session', sessionId: session.sessionId, coordinator };
    });
    this.phase =
      'ticket' in offer
        ? { kind: 'standby', ticket: offer.ticket }
        : { kind: 'session', sessionId: offer.session.sessionId, coordinator };
  }

  private onSessionMessage(coordinator: Coordinator, sessionId: string, message: AttachRequest__Output): void {
    const sessions = coordinator.sessions;
    if (message.heartbeat != null) {
      sessions.heartbeat(sessionId, message.heartbeat.tasks ?? [], message.heartbeat.sentAtMs);
    } else if (message.ready != null) {
      sessions.ready(sessionId, message.ready.epoch, message.ready.taskIds ?? []);
    } else if (message.failure != null) {
      sessions.failed(sessionId, message.failure);
    } else if (message.acknowledge != null) {
      const { requestId, ...request } = message.acknowledge;
      const result = resultOf(requestId, () => ({
        acknowledged: coordinator.acknowledgeInSession(sessionId, request),
      }));
      this.channel.send({ result });
    } else if (message.decline != null) {
      const { requestId, ...request } = message.decline;
      this.channel.send({ result: resultOf(requestId, () => coordinator.declineInSession(sessionId, request)) });
    } else if (message.stateListing != null) {
      coordinator.stateListing(sessionId, message.stateListing.pieces ?? []);
    } else {
      throw new CkptError('MALFORMED', `unexpected ${message.body ?? 'empty'} message in a session`);
    }
  }

  /** Ends the stream with the error, after detaching what it holds. */
  private fail(err: unknown): void {
    const error = CkptError.from(err);
    this.close(error.message);
    this.channel.end(error);
  }

  /**
   * Forgets the stream's standby or session (once). It runs from stream
   * events, where a throw would end the process: a failure is logged.
   */
  private close(why: string): void {
    clearTimeout(this.helloTimer);
    const phase = this.phase;
    this.phase = { kind: 'ended' };
    try {
      if (phase.kind === 'standby') phase.ticket.withdraw();
      else if (phase.kind === 'session') phase.coordinator.sessions.close(phase.sessionId, why);
    } catch (err) {
      this.limits.logger.error({ err, why }, 'ending a session failed');
    }
  }
}

/** `AttachRequest.acknowledge` (field 5) and `SessionAcknowledge.snapshots` (field 4). */
const ACKNOWLEDGE_FIELD = 5;
const SNAPSHOTS_FIELD = 4;

/**
 * `service` whose `Attach` requests keep, for each snapshot of an
 * acknowledgement, the bytes it was decoded from (`adoptTaskBytes`), so
 * that the manifest joins them instead of encoding every snapshot again.
 * An acknowledgement in the regular form is decoded by `ack-decoder.ts`,
 * to the same object the service's deserializer makes of it (which is
 * therefore proto-loader's for ckpt.v1 with `LOADER_OPTIONS`, as every
 * ckpt service definition's is), with its snapshots' bytes in the same
 * pass; every other request goes to the service's deserializer, and its
 * snapshots' bytes are split out of it afterwards. Requests that did not
 * decode, or whose bytes do not split into as many snapshots as were
 * decoded, are left as they are.
 */
export function withAcknowledgementBytes(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const attach = service.Attach;
  if (attach === undefined) return service;
  const deserialize = attach.requestDeserialize;
  return {
    ...service,
    Attach: {
      ...attach,
      requestDeserialize: (bytes: Buffer): unknown => {
        const decoded = decodeAcknowledgement(bytes);
        if (decoded !== undefined) return adoptDecodedBytes(bytes, decoded);
        const message = deserialize(bytes) as Partial<AttachRequest__Output> | null;
        const snapshots = message?.acknowledge?.snapshots;
        if (Array.isArray(snapshots) && snapshots.length > 0) {
          const entries = snapshotEncodings(bytes);
          if (entries?.length === snapshots.length) snapshots.forEach((s, i) => adoptTaskBytes(s, entries[i]!));
        }
        return message;
      },
    },
  };
}

/**
 * The request `decodeAcknowledgement` made, its snapshots keeping their
 * bytes, copied out of `bytes` in one piece.
 */
function adoptDecodedBytes(bytes: Buffer, decoded: DecodedAcknowledgement): AttachRequest__Output {
  const ranges = decoded.snapshotRanges;
  const snapshots = decoded.request.acknowledge.snapshots;
  if (snapshots.length === 0) return decoded.request;
  const base = ranges[0]!;
  const region = Buffer.from(bytes.subarray(base, ranges[ranges.length - 1]));
  snapshots.forEach((s, i) => adoptTaskBytes(s, region.subarray(ranges[2 * i]! - base, ranges[2 * i + 1]! - base)));
  return decoded.request;
}

/**
 * The encodings of the snapshots of an `AttachRequest`'s acknowledgement,
 * in order, copied out of `bytes` in one piece; undefined when there is
 * none or the bytes are not as expected. As protobuf.js decodes, the last
 * `acknowledge` field counts.
 */
export function snapshotEncodings(bytes: Uint8Array): Uint8Array[] | undefined {
  const ack = lastField(bytes, 0, bytes.length, ACKNOWLEDGE_FIELD);
  if (ack === undefined) return undefined;
  const region = Buffer.from(bytes.subarray(ack.start, ack.end));
  const entries: Uint8Array[] = [];
  let pos = 0;
  while (pos < region.length) {
    const field = readField(region, pos, region.length);
    if (field === undefined) return undefined;
    if (field.number === SNAPSHOTS_FIELD) {
      if (field.start === undefined) return undefined;
      entries.push(region.subarray(field.start, field.next));
    }
    pos = field.next;
  }
  return entries;
}

function lastField(
  bytes: Uint8Array,
  from: number,
  to: number,
  number: number,
): { start: number; end: number } | undefined {
  let found: { start: number; end: number } | undefined;
  let pos = from;
  while (pos < to) {
    const field = readField(bytes, pos, to);
    if (field === undefined) return undefined;
    if (field.number === number) {
      if (field.start === undefined) return undefined;
      found = { start: field.start, end: field.next };
    }
    pos = field.next;
  }
  return found;
}

/**
 * The field at `pos`: its number, where a length-delimited value starts,
 * and where the next field starts; undefined past `to` or on a group.
 */
function readField(
  bytes: Uint8Array,
  pos: number,
  to: number,
): { number: number; start?: number; next: number } | undefined {
  const tag = readVarint(bytes, pos, to);
  if (tag === undefined) return undefined;
  const number = Math.floor(tag.value / 8);
  switch (tag.value % 8) {
    case 0: {
      const value = readVarint(bytes, tag.next, to);
      return value === undefined ? undefined : { number, next: value.next };
    }
    case 1:
      return tag.next + 8 <= to ? { number, next: tag.next + 8 } : undefined;
    case 5:
      return tag.next + 4 <= to ? { number, next: tag.next + 4 } : undefined;
    case 2: {
      const length = readVarint(bytes, tag.next, to);
      if (length === undefined || length.next + length.value > to) return undefined;
      return { number, start: length.next, next: length.next + length.value };
    }
    default:
      return undefined;
  }
}

function readVarint(bytes: Uint8Array, pos: number, to: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let at = pos; at < to && at < pos + 10; at += 1) {
    const byte = bytes[at]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return { value, next: at + 1 };
    scale *= 0x80;
  }
  return undefined;
}
