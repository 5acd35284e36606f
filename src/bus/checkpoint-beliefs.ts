/**
 * What a worker believes about its job's checkpoints, as `bus.proto` rules
 * it: the epoch and the checkpoint ids it believes come from its gRPC
 * session only (welcomes, restores, and the acknowledgements and declines
 * the coordinator accepted). A control message or barrier from NATS is
 * checked against these beliefs and never raises them: a forged id or
 * epoch cannot move the worker.
 *
 * Plausible ids are 1 to `MAX_CHECKPOINT_ID_AHEAD` above the highest
 * confirmed id. Each source takes a trigger only above the last one it took
 * in the epoch, and every restore forgets what the sources took. A
 * completion counts only for an id whose acknowledgement the worker sent in
 * the epoch and the coordinator accepted; one that arrives while the answer
 * is awaited waits for it.
 */

/** A control message or barrier names an id at most this far above the highest confirmed one. */
export const MAX_CHECKPOINT_ID_AHEAD = 10_000;

/** Acknowledged and declined checkpoint ids remembered per epoch; older ones are forgotten first. */
export const MAX_TRACKED_CHECKPOINTS = 1024;

/** What a completion may do: count now, wait for the answer to its acknowledgement, or nothing. */
export type CompleteVerdict = 'count' | 'wait' | 'drop';

/** The checkpoints an abort stands for: `checkpointId`, or every id up to it with `upTo`. */
export interface AbortRange {
  checkpointId: number;
  upTo: boolean;
}

/** The session's confirmation of ids: a committed or restored id, and the next id to be triggered (0: not given). */
export interface ConfirmedIds {
  checkpointId: number;
  nextCheckpointId: number;
}

interface AckState {
  /** Sends of acknowledgements of the checkpoint not answered yet. */
  pending: number;
  accepted: boolean;
  refused: boolean;
}

/** True for a checkpoint id: a safe integer of at least 1. */
export function isCheckpointId(id: number): boolean {
  return Number.isSafeInteger(id) && id >= 1;
}

/** The session's view of a job's checkpoints, against which NATS messages are checked. */
export class CheckpointBeliefs {
  #epoch: number;
  #confirmed = 0;
  readonly #taken = new Map<string, number>();
  readonly #acks = new Map<number, AckState>();
  readonly #declined = new Set<number>();

  /** `epoch`: the epoch the session's welcome named. */
  constructor(epoch: number) {
    this.#epoch = epoch;
  }

  /** The epoch the session put the worker in. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The highest checkpoint id the session confirmed; 0 before any. */
  get highestConfirmed(): number {
    return this.#confirmed;
  }

  /** The session moved the worker to `epoch`: what was taken, acknowledged or declined is forgotten. */
  enterEpoch(epoch: number): void {
    this.#epoch = epoch;
    this.#acks.clear();
    this.restored();
  }

  /** A restore: the sources start over, having taken nothing. */
  restored(): void {
    this.#taken.clear();
    this.#declined.clear();
  }

  /** The session confirmed that checkpoint `id` exists (or existed). */
  confirm(id: number): void {
    if (isCheckpointId(id) && id > this.#confirmed) this.#confirmed = id;
  }

  /** A welcome or restore: its checkpoint id and, when given, every id below its next one. */
  confirmSession(ids: ConfirmedIds): void {
    this.confirm(ids.checkpointId);
    if (ids.nextCheckpointId > 0) this.confirm(ids.nextCheckpointId - 1);
  }

  /** True for an id from 1 to `MAX_CHECKPOINT_ID_AHEAD` above the highest confirmed one. */
  plausible(id: number): boolean {
    return isCheckpointId(id) && id <= this.#confirmed + MAX_CHECKPOINT_ID_AHEAD;
  }

  /** True when `source` has not taken `id` or a later trigger in the epoch. */
  takes(source: string, id: number): boolean {
    return id > (this.#taken.get(source) ?? 0);
  }

  /** `source` snapshotted for trigger `id`. */
  took(source: string, id: number): void {
    this.#taken.set(source, Math.max(id, this.#taken.get(source) ?? 0));
  }

  /**
   * True, once per id, when a trigger a source cannot take is worth a
   * decline: its id is above the highest confirmed one, so the coordinator
   * may still wait for it. Declining a confirmed id could only abort a
   * checkpoint the worker acknowledged already.
   */
  mayDecline(id: number): boolean {
    if (!(id > this.#confirmed) || this.#declined.has(id)) return false;
    remember(this.#declined, id);
    return true;
  }

  /** The worker sends acknowledgements of checkpoint `id` in `epoch`. */
  ackSent(epoch: number, id: number): void {
    if (epoch !== this.#epoch || !isCheckpointId(id)) return;
    let state = this.#acks.get(id);
    if (state === undefined) {
      state = { pending: 0, accepted: false, refused: false };
      this.#acks.set(id, state);
      if (this.#acks.size > MAX_TRACKED_CHECKPOINTS) this.#acks.delete(this.#acks.keys().next().value as number);
    }
    state.pending += 1;
  }

  /** The coordinator answered one send of `ackSent`; an accepted one confirms the id. */
  ackAnswered(epoch: number, id: number, accepted: boolean): void {
    if (accepted) this.confirm(id);
    const state = epoch === this.#epoch ? this.#acks.get(id) : undefined;
    if (state === undefined) return;
    state.pending = Math.max(0, state.pending - 1);
    if (accepted) state.accepted = true;
    else state.refused = true;
  }

  /**
   * Whether a completion of `id` in `epoch` counts: only in the current
   * epoch, for an id the worker acknowledged and the coordinator accepted,
   * and once. While an acknowledgement of it awaits its answer, it waits.
   */
  completeVerdict(epoch: number, id: number): CompleteVerdict {
    const state = epoch === this.#epoch ? this.#acks.get(id) : undefined;
    if (state === undefined || state.refused) return 'drop';
    if (state.pending > 0) return 'wait';
    if (!state.accepted) return 'drop';
    this.#acks.delete(id);
    return 'count';
  }

  /**
   * An abort of one checkpoint counted: its acknowledgement is forgotten, so
   * a completion of it never counts. A coordinator does not complete what
   * it aborted; a forged abort only delays a commit to the next completed
   * checkpoint. A coordinator restart's abort forgets nothing: it stands
   * only for the ids up to it that did not complete, and a completion from
   * the previous leader may still be on its way.
   */
  aborted(range: AbortRange): void {
    if (!range.upTo) this.#acks.delete(range.checkpointId);
  }

  /**
   * The checkpoints an abort in the current epoch stands for; undefined for
   * another epoch or an implausible id. A coordinator restart's abort of
   * every id up to one is capped at the highest plausible id.
   */
  abortRange(epoch: number, id: number, upTo: boolean): AbortRange | undefined {
    if (epoch !== this.#epoch || !(id >= 1)) return undefined;
    const highest = this.#confirmed + MAX_CHECKPOINT_ID_AHEAD;
    if (upTo) return { checkpointId: Math.floor(Math.min(id, highest)), upTo };
    return this.plausible(id) ? { checkpointId: id, upTo } : undefined;
  }
}

/** Adds `id` to a set that keeps the newest `MAX_TRACKED_CHECKPOINTS`. */
function remember(set: Set<number>, id: number): void {
  set.add(id);
  if (set.size > MAX_TRACKED_CHECKPOINTS) set.delete(set.values().next().value as number);
}
