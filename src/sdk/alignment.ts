/**
 * Barrier alignment of one task with inputs, as a pure state machine.
 *
 * Items arrive per input, in order (records and barriers of one input keep
 * their order on its NATS subject). `next()` says what the task does next:
 * process a record, snapshot a checkpoint, or give up on one.
 *
 * - ALIGNED: when barrier n arrives on an input, that input's later items
 *   are held back until barrier n has arrived on every input; then the task
 *   snapshots n and the held items are released (exactly-once).
 * - AT_LEAST_ONCE: nothing is held back; the task snapshots n when barrier
 *   n has arrived on every input.
 * - UNALIGNED: the task snapshots n as soon as the first barrier n is
 *   offered, ahead of the records queued before it; nothing is held back.
 *   Every record taken afterwards from an input before that input's barrier
 *   n is in flight for n (`inFlightFor`) and belongs to n's snapshot; so
 *   are the records still queued on an input when its barrier n is offered
 *   (`in-flight`: taken at once, they are processed later as usual). When
 *   barrier n has been offered on every input, n is finished at once: a
 *   checkpoint never waits for the records queued ahead of its barriers,
 *   which is what keeps it short when the task is slow or its output full.
 *
 * - ALIGNED with a timeout (`alignedTimeoutMs` > 0): a checkpoint whose
 *   first barrier reached the task (was offered, queued behind records or
 *   not) that long ago and that has not aligned yet times out into an
 *   unaligned one, as in Flink: the task snapshots at once; on each input
 *   whose barrier n is queued, the records ahead of it are in flight
 *   (`in-flight`) and the barrier counts as arrived; the other inputs are
 *   no longer held back, their records are in flight for n until their
 *   barrier n is offered, which is then taken at once as in UNALIGNED.
 *   Checkpoints time out in id order, and a savepoint's barriers never do
 *   (a savepoint holds no in-flight records), so no checkpoint times out
 *   while an older one still aligns.
 *
 * A checkpoint that can no longer align, because an input delivered a newer
 * barrier without it, is cancelled, so that no input stays blocked by a
 * barrier that will never come.
 */
import { Fifo } from './fifo.js';

/** How a task aligns barriers (the job policy's mode). */
export type AlignmentMode = 'aligned' | 'at-least-once' | 'unaligned';

/** One item of an input. */
export type InputItem<R> =
  | { kind: 'record'; record: R }
  /** `savepoint`: the barrier of a savepoint, whose alignment never times out. */
  | { kind: 'barrier'; checkpointId: number; savepoint?: boolean };

/**
 * What the task does next. A snapshot's `startedAtMs` is when the task took
 * the checkpoint's first barrier (aligned, at-least-once) or was offered it
 * (unaligned): where the checkpoint started for this task. An `unaligned`
 * snapshot (UNALIGNED mode, or an aligned checkpoint that timed out)
 * records in-flight records until its `finish`.
 */
export type AlignAction<R> =
  | { kind: 'process'; input: string; record: R; inFlightFor?: number[] }
  | { kind: 'snapshot'; checkpointId: number; alignmentMs: number; startedAtMs: number; unaligned: boolean }
  | { kind: 'in-flight'; checkpointId: number; input: string; records: R[] }
  | { kind: 'finish'; checkpointId: number; alignmentMs: number }
  | { kind: 'cancel'; checkpointId: number; reason: string };

interface Pending {
  seen: Set<string>;
  /** When the task took the checkpoint's first barrier (the aligner's clock): the checkpoint started. */
  firstAtMs: number;
  /** Snapshotted already, recording in-flight records until every input delivered the barrier. */
  unaligned: boolean;
}

/** The alignment of one task's inputs. */
export class InputAligner<R> {
  readonly #inputs: readonly string[];
  readonly #mode: AlignmentMode;
  readonly #now: () => number;
  readonly #timeoutMs: number;
  /** ALIGNED with a timeout: when each checkpoint not snapshotted yet first reached the task (Infinity: never times out). */
  readonly #arrived = new Map<number, number>();
  readonly #queues = new Map<string, Fifo<InputItem<R>>>();
  readonly #pending = new Map<number, Pending>();
  readonly #lastBarrier = new Map<string, number>();
  readonly #cancelled = new Set<number>();
  readonly #out = new Fifo<AlignAction<R>>();
  #lastSnapshot = 0;
  #lastStarted = 0;
  #cursor = 0;

  /**
   * `inputs`: the task's distinct inputs; `now`: the clock for alignment
   * times and the `startedAtMs` of snapshot actions (wall clock by default,
   * comparable with a trigger's time); `alignedTimeoutMs`: in ALIGNED
   * mode, how long a checkpoint may wait to align before it is taken
   * unaligned (0: it always aligns).
   */
  constructor(inputs: readonly string[], mode: AlignmentMode, now: () => number = Date.now, alignedTimeoutMs = 0) {
    this.#inputs = [...new Set(inputs)];
    this.#mode = mode;
    this.#now = now;
    this.#timeoutMs = mode === 'aligned' && alignedTimeoutMs > 0 ? alignedTimeoutMs : 0;
    for (const input of this.#inputs) this.#queues.set(input, new Fifo());
  }

  /** Queues one item of `input`; returns false (and drops it) for an unknown input. */
  offer(input: string, item: InputItem<R>): boolean {
    const queue = this.#queues.get(input);
    if (queue === undefined) return false;
    if (item.kind === 'barrier') {
      if (this.#mode === 'unaligned') {
        // Unaligned barriers are taken when offered: they are never queued behind records.
        this.#startUnaligned(item.checkpointId);
        this.#onUnalignedBarrier(input, item.checkpointId, queue);
        return true;
      }
      if (this.#pending.get(item.checkpointId)?.unaligned === true) {
        // The checkpoint timed out into an unaligned one: its later barriers are taken when offered too.
        this.#onUnalignedBarrier(input, item.checkpointId, queue);
        return true;
      }
      if (this.#timeoutMs > 0) this.#arrive(item.checkpointId, item.savepoint === true);
    }
    queue.push(item);
    return true;
  }

  /** The next action, or undefined when nothing can proceed until more items arrive. */
  next(): AlignAction<R> | undefined {
    if (this.#arrived.size > 0) this.#expire();
    for (;;) {
      const ready = this.#out.shift();
      if (ready !== undefined) return ready;
      const input = this.#nextInput();
      if (input === undefined) return undefined;
      const item = this.#queues.get(input)?.shift();
      if (item === undefined) continue;
      if (item.kind === 'record') return this.#process(input, item.record);
      this.#onBarrier(input, item.checkpointId);
    }
  }

  /**
   * The next action that is not a record (a snapshot, finish or cancel
   * ready now), or undefined: what a task whose output is full still does.
   */
  nextControl(): AlignAction<R> | undefined {
    if (this.#arrived.size > 0) this.#expire();
    return this.#out.shift();
  }

  /**
   * Gives up on checkpoint `checkpointId` (aborted), or on every checkpoint
   * up to it when `upTo`: inputs held back for it are released and its
   * later barriers are ignored.
   */
  cancel(checkpointId: number, upTo = false): void {
    const matches = (id: number): boolean => id === checkpointId || (upTo && id < checkpointId);
    for (const id of [...this.#pending.keys()]) if (matches(id)) this.#pending.delete(id);
    for (const id of [...this.#arrived.keys()]) if (matches(id)) this.#arrived.delete(id);
    if (checkpointId > this.#lastSnapshot) this.#cancelled.add(checkpointId);
    const kept: AlignAction<R>[] = [];
    for (let action = this.#out.shift(); action !== undefined; action = this.#out.shift()) {
      if (action.kind === 'process' || !matches(action.checkpointId)) kept.push(action);
    }
    for (const action of kept) this.#out.push(action);
  }

  /** Drops every queued item and all alignment state (a restore). */
  reset(): void {
    for (const queue of this.#queues.values()) queue.clear();
    this.#pending.clear();
    this.#arrived.clear();
    this.#lastBarrier.clear();
    this.#cancelled.clear();
    this.#out.clear();
    this.#lastSnapshot = 0;
    this.#lastStarted = 0;
  }

  /** Items queued over all inputs, held back or not. */
  get queued(): number {
    let n = 0;
    for (const queue of this.#queues.values()) n += queue.length;
    return n;
  }

  /** The inputs held back now, waiting for the other inputs' barrier. */
  blockedInputs(): string[] {
    return this.#inputs.filter((input) => this.#isBlocked(input));
  }

  /** The checkpoints whose alignment is in progress, ascending. */
  aligning(): number[] {
    return [...this.#pending.keys()].sort((a, b) => a - b);
  }

  /**
   * When (the aligner's clock) the next checkpoint times out if it has not
   * aligned by then: what a task waits for to call `next` or `nextControl`
   * again; undefined when none will.
   */
  nextTimeout(): number | undefined {
    const first = this.#firstArrived();
    return first === undefined || first[1] === Infinity ? undefined : first[1] + this.#timeoutMs;
  }

  /** Round robin over the inputs that are not held back and have items. */
  #nextInput(): string | undefined {
    const n = this.#inputs.length;
    for (let i = 0; i < n; i += 1) {
      const input = this.#inputs[(this.#cursor + i) % n] as string;
      if ((this.#queues.get(input)?.length ?? 0) > 0 && !this.#isBlocked(input)) {
        this.#cursor = (this.#cursor + i + 1) % n;
        return input;
      }
    }
    return undefined;
  }

  #isBlocked(input: string): boolean {
    if (this.#mode !== 'aligned') return false;
    for (const pending of this.#pending.values()) if (!pending.unaligned && pending.seen.has(input)) return true;
    return false;
  }

  /** Barrier `checkpointId` reached the task (ALIGNED with a timeout): its clock starts at the first. */
  #arrive(checkpointId: number, savepoint: boolean): void {
    if (checkpointId <= this.#lastSnapshot || this.#cancelled.has(checkpointId)) return;
    const at = this.#arrived.get(checkpointId);
    if (at === undefined) this.#arrived.set(checkpointId, savepoint ? Infinity : this.#now());
    else if (savepoint) this.#arrived.set(checkpointId, Infinity);
  }

  /** The checkpoint with the lowest id among those that may still time out, and when it arrived. */
  #firstArrived(): [number, number] | undefined {
    let first: [number, number] | undefined;
    for (const entry of this.#arrived) if (first === undefined || entry[0] < first[0]) first = entry;
    return first;
  }

  /** Times out, in id order, the checkpoints that waited `timeoutMs` to align. */
  #expire(): void {
    const now = this.#now();
    for (let first = this.#firstArrived(); first !== undefined; first = this.#firstArrived()) {
      const [checkpointId, at] = first;
      const live = checkpointId > this.#lastSnapshot && !this.#cancelled.has(checkpointId);
      if (live && at + this.#timeoutMs > now) return;
      this.#arrived.delete(checkpointId);
      if (live) this.#timeOut(checkpointId, now);
    }
  }

  /**
   * Checkpoint `checkpointId` waited too long to align: snapshot now; on
   * each input that did not deliver its barrier but has it queued, the
   * records ahead of it are in flight and the barrier counts as delivered
   * (it is skipped when reached).
   */
  #timeOut(checkpointId: number, now: number): void {
    let pending = this.#pending.get(checkpointId);
    if (pending === undefined) {
      pending = { seen: new Set(), firstAtMs: now, unaligned: true };
      this.#pending.set(checkpointId, pending);
    }
    pending.unaligned = true;
    this.#out.push({
      kind: 'snapshot',
      checkpointId,
      alignmentMs: now - pending.firstAtMs,
      startedAtMs: pending.firstAtMs,
      unaligned: true,
    });
    for (const input of this.#inputs) {
      if (pending.seen.has(input)) continue;
      const records: R[] = [];
      let found = false;
      for (const item of this.#queues.get(input)?.items() ?? []) {
        if (item.kind === 'record') records.push(item.record);
        else if (item.checkpointId >= checkpointId) {
          found = item.checkpointId === checkpointId;
          break;
        }
      }
      if (!found) continue;
      if (records.length > 0) this.#out.push({ kind: 'in-flight', checkpointId, input, records });
      pending.seen.add(input);
    }
    this.#finishIfComplete(checkpointId, pending);
  }

  #onBarrier(input: string, checkpointId: number): void {
    this.#lastBarrier.set(input, Math.max(checkpointId, this.#lastBarrier.get(input) ?? 0));
    this.#cancelSkipped(input, checkpointId);
    if (checkpointId <= this.#lastSnapshot || this.#cancelled.has(checkpointId)) return;
    // A checkpoint that timed out took this barrier when it did: the records ahead of it are stored in flight.
    if (this.#pending.get(checkpointId)?.unaligned === true) return;
    const passed = this.#inputs.find(
      (other) =>
        other !== input &&
        (this.#lastBarrier.get(other) ?? 0) > checkpointId &&
        this.#pending.get(checkpointId)?.seen.has(other) !== true,
    );
    if (passed !== undefined) {
      this.#giveUp(checkpointId, `input ${passed} delivered a newer barrier without barrier ${checkpointId}`);
      return;
    }
    const now = this.#now();
    const pending = this.#pending.get(checkpointId) ?? { seen: new Set<string>(), firstAtMs: now, unaligned: false };
    pending.seen.add(input);
    this.#pending.set(checkpointId, pending);
    if (pending.seen.size < this.#inputs.length) return;
    this.#pending.delete(checkpointId);
    this.#arrived.delete(checkpointId);
    this.#lastSnapshot = checkpointId;
    for (const id of this.#cancelled) if (id <= checkpointId) this.#cancelled.delete(id);
    this.#out.push({
      kind: 'snapshot',
      checkpointId,
      alignmentMs: now - pending.firstAtMs,
      startedAtMs: pending.firstAtMs,
      unaligned: false,
    });
  }

  #process(input: string, record: R): AlignAction<R> {
    if (this.#pending.size === 0) return { kind: 'process', input, record };
    const inFlightFor: number[] = [];
    for (const [id, p] of this.#pending) if (p.unaligned && !p.seen.has(input)) inFlightFor.push(id);
    return inFlightFor.length === 0
      ? { kind: 'process', input, record }
      : { kind: 'process', input, record, inFlightFor };
  }

  /** The first barrier n offered on any input: snapshot now, ahead of what is queued. */
  #startUnaligned(checkpointId: number): void {
    if (checkpointId <= this.#lastStarted || this.#cancelled.has(checkpointId)) return;
    this.#lastStarted = checkpointId;
    const now = this.#now();
    this.#pending.set(checkpointId, { seen: new Set(), firstAtMs: now, unaligned: true });
    this.#out.push({ kind: 'snapshot', checkpointId, alignmentMs: 0, startedAtMs: now, unaligned: true });
  }

  /** Barrier n offered on `input`: the records still queued on it are in flight for n. */
  #onUnalignedBarrier(input: string, checkpointId: number, queue: Fifo<InputItem<R>>): void {
    this.#lastBarrier.set(input, Math.max(checkpointId, this.#lastBarrier.get(input) ?? 0));
    this.#cancelSkipped(input, checkpointId);
    const pending = this.#pending.get(checkpointId);
    if (pending === undefined || pending.seen.has(input)) return;
    const records = queue.items().flatMap((item) => (item.kind === 'record' ? [item.record] : []));
    if (records.length > 0) this.#out.push({ kind: 'in-flight', checkpointId, input, records });
    pending.seen.add(input);
    this.#finishIfComplete(checkpointId, pending);
  }

  /** An unaligned checkpoint whose barrier every input delivered is finished. */
  #finishIfComplete(checkpointId: number, pending: Pending): void {
    if (pending.seen.size < this.#inputs.length) return;
    this.#pending.delete(checkpointId);
    this.#lastSnapshot = checkpointId;
    for (const id of this.#cancelled) if (id <= checkpointId) this.#cancelled.delete(id);
    this.#out.push({ kind: 'finish', checkpointId, alignmentMs: this.#now() - pending.firstAtMs });
  }

  /** Barrier `checkpointId` on `input` means `input` skipped every older checkpoint it did not deliver. */
  #cancelSkipped(input: string, checkpointId: number): void {
    for (const [id, pending] of this.#pending) {
      if (id < checkpointId && !pending.seen.has(input)) {
        this.#giveUp(id, `input ${input} delivered barrier ${checkpointId} without barrier ${id}`);
      }
    }
  }

  #giveUp(checkpointId: number, reason: string): void {
    this.#pending.delete(checkpointId);
    this.#arrived.delete(checkpointId);
    this.#cancelled.add(checkpointId);
    this.#out.push({ kind: 'cancel', checkpointId, reason });
  }
}
