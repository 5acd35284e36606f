/**
 * A worker session's view of the coordinator leadership: the highest leader
 * term its session has seen in a welcome or a command. A welcome or command
 * of a lower term comes from a deposed leader that has not noticed yet, and
 * is refused. Only the session raises it: NATS control messages are checked
 * against the terms the worker applied (`TermGate`) and never raise one.
 */

/** The highest leader term a worker's session has seen. */
export class LeaderTerms {
  #highest = 0;

  /** The highest term seen; 0 before the first. */
  get highest(): number {
    return this.#highest;
  }

  /**
   * Records the term of a welcome or command; returns false, recording
   * nothing, when it is lower than the highest seen (the message is stale).
   */
  admit(term: number): boolean {
    if (term < this.#highest) return false;
    this.#highest = term;
    return true;
  }
}
