/**
 * A worker's view of the coordinator leadership: the highest leader term it
 * has seen in a welcome, a command or a control message. A message of a
 * lower term comes from a deposed leader that has not noticed yet, and is
 * ignored.
 */

/** The highest leader term seen so far, shared by a worker's session and its subscriptions. */
export class LeaderTerms {
  #highest = 0;

  /** The highest term seen; 0 before the first. */
  get highest(): number {
    return this.#highest;
  }

  /**
   * Records the term of a message; returns false, recording nothing, when
   * it is lower than the highest seen (the message is stale).
   */
  admit(term: number): boolean {
    if (term < this.#highest) return false;
    this.#highest = term;
    return true;
  }
}
