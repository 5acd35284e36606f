/**
 * A worker's intake of its job's control messages, as `bus.proto` rules
 * it, shared by the SDK and the simulated worker: every message is decoded
 * and checked against what the gRPC session confirmed before a handler sees
 * it, and a message that fails a check is dropped without effect.
 *
 * - Bytes that do not decode and another job's messages are dropped.
 * - Terms: see `TermGate` (lower dropped, higher held until confirmed).
 * - Trigger: only for the current epoch and a plausible id; which sources
 *   take it is the handler's (`CheckpointBeliefs.takes`).
 * - CheckpointComplete: only for an id the worker acknowledged in the
 *   epoch and the coordinator accepted (`CheckpointBeliefs.completeVerdict`).
 * - CheckpointAbort: only for the current epoch and a plausible id.
 * - Recover: advisory; passed on, it changes nothing here.
 *
 * Nothing a message does can throw out of `receive`.
 */
import type { CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../gen/ckpt/v1/Recover.js';
import type { Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import { CheckpointBeliefs, type AbortRange, type ConfirmedIds } from './checkpoint-beliefs.js';
import { controlMessageCodecs } from './control-codecs.js';
import type { Drop, DropReason } from './drop-log.js';
import type { ControlKind } from './subjects.js';
import { TermGate } from './term-gate.js';

/** Handlers of the control messages that passed every check. */
export interface ControlHandlers {
  trigger(message: Trigger__Output): void;
  complete(message: CheckpointComplete__Output): void;
  abort(message: CheckpointAbort__Output, range: AbortRange): void;
  recover(message: Recover__Output): void;
}

/** Options of a `ControlIntake`. */
export interface ControlIntakeOptions {
  jobId: string;
  /** The epoch and term of the session's welcome. */
  epoch: number;
  term: number;
  handlers: ControlHandlers;
  /** Every drop, for logging (see `DropLog`) or reporting. */
  onDrop(drop: Drop): void;
}

/** A decoded control message. */
export type ControlMessage =
  | { kind: 'trigger'; message: Trigger__Output }
  | { kind: 'complete'; message: CheckpointComplete__Output }
  | { kind: 'abort'; message: CheckpointAbort__Output }
  | { kind: 'recover'; message: Recover__Output };

/** Decodes the bytes of a control subject; throws for bytes that are not that message. */
export function decodeControl(kind: ControlKind, bytes: Uint8Array): ControlMessage {
  const codecs = controlMessageCodecs();
  switch (kind) {
    case 'trigger':
      return { kind, message: codecs.trigger.decode(bytes) };
    case 'complete':
      return { kind, message: codecs.complete.decode(bytes) };
    case 'abort':
      return { kind, message: codecs.abort.decode(bytes) };
    case 'recover':
      return { kind, message: codecs.recover.decode(bytes) };
  }
}

/** Checks control messages against the session's beliefs and hands on those that pass. */
export class ControlIntake {
  /** What the session confirmed; also what triggers and barriers are checked against. */
  readonly beliefs: CheckpointBeliefs;
  readonly #o: ControlIntakeOptions;
  readonly #terms: TermGate<ControlMessage>;
  /** Completions waiting for the answer to the worker's acknowledgement, by id. */
  readonly #waiting = new Map<number, CheckpointComplete__Output>();

  /** See `ControlIntakeOptions`. */
  constructor(options: ControlIntakeOptions) {
    this.#o = options;
    this.beliefs = new CheckpointBeliefs(options.epoch);
    this.#terms = new TermGate(options.term);
  }

  /** The highest leader term the session confirmed. */
  get term(): number {
    return this.#terms.confirmed;
  }

  /** One message of the `kind` control subject. Never throws. */
  receive(kind: ControlKind, bytes: Uint8Array): void {
    let decoded: ControlMessage;
    try {
      decoded = decodeControl(kind, bytes);
    } catch (error) {
      this.#drop({ kind, reason: 'undecodable', error });
      return;
    }
    const { message } = decoded;
    if (message.jobId !== this.#o.jobId) {
      this.#drop(dropOf(decoded, 'other-job'));
      return;
    }
    const { verdict, evicted } = this.#terms.offer(message.term, decoded);
    if (evicted !== undefined) this.#drop(dropOf(evicted, 'unconfirmed-term'));
    if (verdict === 'stale') this.#drop(dropOf(decoded, 'stale-term'));
    else if (verdict === 'now') this.#apply(decoded);
  }

  /**
   * The session confirmed leader term `term` (a welcome, restore or start
   * that the worker has applied): held messages of that term are handled
   * now, in arrival order, against the beliefs as they are now.
   */
  confirmTerm(term: number): void {
    const { released, dropped } = this.#terms.confirm(term);
    for (const held of dropped) this.#drop(dropOf(held, 'unconfirmed-term'));
    for (const held of released) this.#apply(held);
  }

  /** The session moved the worker to `epoch`. */
  enterEpoch(epoch: number): void {
    this.beliefs.enterEpoch(epoch);
    for (const message of this.#waiting.values()) this.#drop(dropOf({ kind: 'complete', message }, 'other-epoch'));
    this.#waiting.clear();
  }

  /** A welcome or restore confirmed these ids. */
  confirmIds(ids: ConfirmedIds): void {
    this.beliefs.confirmSession(ids);
  }

  /** The worker sends acknowledgements of checkpoint `id` in `epoch`. */
  ackSent(epoch: number, id: number): void {
    this.beliefs.ackSent(epoch, id);
  }

  /** The coordinator answered a send of acknowledgements; a completion waiting for it is decided now. */
  ackAnswered(epoch: number, id: number, accepted: boolean): void {
    this.beliefs.ackAnswered(epoch, id, accepted);
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return;
    this.#waiting.delete(id);
    this.#complete(waiting);
  }

  #apply(decoded: ControlMessage): void {
    switch (decoded.kind) {
      case 'trigger':
        return this.#trigger(decoded.message);
      case 'complete':
        return this.#complete(decoded.message);
      case 'abort':
        return this.#abort(decoded.message);
      case 'recover':
        return this.#handle(decoded, () => this.#o.handlers.recover(decoded.message));
    }
  }

  #trigger(message: Trigger__Output): void {
    const decoded = { kind: 'trigger', message } as const;
    if (message.epoch !== this.beliefs.epoch) this.#drop(dropOf(decoded, 'other-epoch'));
    else if (!this.beliefs.plausible(message.checkpointId)) this.#drop(dropOf(decoded, 'implausible-id'));
    else this.#handle(decoded, () => this.#o.handlers.trigger(message));
  }

  #complete(message: CheckpointComplete__Output): void {
    const decoded = { kind: 'complete', message } as const;
    if (message.epoch !== this.beliefs.epoch) {
      this.#drop(dropOf(decoded, 'other-epoch'));
      return;
    }
    const verdict = this.beliefs.completeVerdict(message.epoch, message.checkpointId);
    if (verdict === 'wait') this.#waiting.set(message.checkpointId, message);
    else if (verdict === 'drop') this.#drop(dropOf(decoded, 'not-acknowledged'));
    else this.#handle(decoded, () => this.#o.handlers.complete(message));
  }

  #abort(message: CheckpointAbort__Output): void {
    const decoded = { kind: 'abort', message } as const;
    if (message.epoch !== this.beliefs.epoch) {
      this.#drop(dropOf(decoded, 'other-epoch'));
      return;
    }
    const upTo = message.reason === 'ABORT_REASON_COORDINATOR_RESTART';
    const range = this.beliefs.abortRange(message.epoch, message.checkpointId, upTo);
    if (range === undefined) {
      this.#drop(dropOf(decoded, 'implausible-id'));
      return;
    }
    this.beliefs.aborted(range);
    const waiting = range.upTo ? undefined : this.#waiting.get(range.checkpointId);
    if (waiting !== undefined) {
      this.#waiting.delete(range.checkpointId);
      this.#drop(dropOf({ kind: 'complete', message: waiting }, 'aborted'));
    }
    this.#handle(decoded, () => this.#o.handlers.abort(message, range));
  }

  /** Runs a handler; what it throws is reported as a drop, never thrown on. */
  #handle(decoded: ControlMessage, run: () => void): void {
    try {
      run();
    } catch (error) {
      this.#drop({ ...dropOf(decoded, 'failed'), error });
    }
  }

  #drop(drop: Drop): void {
    try {
      this.#o.onDrop(drop);
    } catch {
      // Reporting a drop must not fail the intake.
    }
  }
}

/** A drop of `decoded` for `reason`, with the ids it claimed. */
function dropOf(decoded: ControlMessage, reason: DropReason): Drop {
  const m = decoded.message;
  const checkpointId = 'checkpointId' in m ? m.checkpointId : undefined;
  return { kind: decoded.kind, reason, term: m.term, epoch: m.epoch, checkpointId };
}
