/**
 * What a coordinator does when etcd refuses one of its fenced writes
 * because another coordinator leads now: it tells its owner once, so that
 * the owner stops it, and the caller whose write was refused gets
 * NOT_LEADER, which a client answers by finding the new leader.
 */
import { CkptError, LeadershipLostError } from '../core/errors.js';
import type { Logger } from '../log/index.js';

/** The lost-leadership report of one coordinator. */
export class LeadershipFence {
  private readonly log: Logger;
  private readonly onLost: ((err: LeadershipLostError) => void) | undefined;
  private lostValue = false;

  /** `onLost` is called once, at the first refused write. */
  constructor(log: Logger, onLost: ((err: LeadershipLostError) => void) | undefined) {
    this.log = log;
    this.onLost = onLost;
  }

  /** A fenced write was refused: reports it to the owner, the first time only. */
  lost(err: LeadershipLostError): void {
    if (this.lostValue) return;
    this.lostValue = true;
    this.log.warn({ err }, 'a fenced etcd write was refused: another coordinator leads');
    this.onLost?.(err);
  }

  /** Runs a write; a refused fence reports the lost leadership and becomes NOT_LEADER for the caller. */
  async run<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (!(err instanceof LeadershipLostError)) throw err;
      this.lost(err);
      throw new CkptError('NOT_LEADER', 'this coordinator is no longer the leader', { cause: err, retryable: true });
    }
  }
}
