/**
 * Leader terms on the barrier plane, as `bus.proto` rules them: a worker
 * believes a term only once its gRPC session confirmed it (Welcome,
 * RestoreCommand, StartCommand), never because a NATS message named it. A
 * control message of a lower term than the confirmed one comes from a
 * deposed leader and is dropped; one of a higher term is held, a bounded
 * number of them with the oldest evicted first, until the session confirms
 * that term. Then the held messages of that term are handed back in arrival
 * order and those of any other term are dropped.
 */

/** At most this many control messages of unconfirmed terms are held. */
export const MAX_HELD_CONTROL_MESSAGES = 64;

/** What the gate decided for one message: handle it now, it is held, or it is stale. */
export type TermVerdict = 'now' | 'held' | 'stale';

/** What a confirmation did with the held messages. */
export interface TermRelease<T> {
  /** The held messages of the confirmed term, in arrival order. */
  released: T[];
  /** Held messages of other terms, dropped. */
  dropped: T[];
}

interface Held<T> {
  term: number;
  message: T;
}

/** Holds control messages of terms the session has not confirmed yet. */
export class TermGate<T> {
  readonly #max: number;
  #held: Held<T>[] = [];
  #confirmed: number;

  /** `confirmed`: the term the session confirmed so far (a welcome's). */
  constructor(confirmed: number, max = MAX_HELD_CONTROL_MESSAGES) {
    this.#confirmed = confirmed;
    this.#max = max;
  }

  /** The highest term the session confirmed. */
  get confirmed(): number {
    return this.#confirmed;
  }

  /** How many messages are held now. */
  get held(): number {
    return this.#held.length;
  }

  /**
   * Decides on one message of `term`. A held message may push the oldest
   * held one out: that one is returned as `evicted`.
   */
  offer(term: number, message: T): { verdict: TermVerdict; evicted?: T } {
    if (term < this.#confirmed) return { verdict: 'stale' };
    if (term === this.#confirmed) return { verdict: 'now' };
    this.#held.push({ term, message });
    const evicted = this.#held.length > this.#max ? this.#held.shift() : undefined;
    return evicted === undefined ? { verdict: 'held' } : { verdict: 'held', evicted: evicted.message };
  }

  /**
   * The session confirmed `term`. When it is above the confirmed term, it
   * becomes the confirmed term, and every held message goes: those of
   * `term` are released, the others dropped. A term not above the confirmed
   * one changes nothing.
   */
  confirm(term: number): TermRelease<T> {
    if (!(term > this.#confirmed)) return { released: [], dropped: [] };
    this.#confirmed = term;
    const held = this.#held;
    this.#held = [];
    const released: T[] = [];
    const dropped: T[] = [];
    for (const h of held) (h.term === term ? released : dropped).push(h.message);
    return { released, dropped };
  }
}
