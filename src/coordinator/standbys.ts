/**
 * Standby workers waiting for their tasks: each is a checked hello with
 * `standby` set and its open stream, kept until a session end frees every
 * task it names (then the coordinator attaches it), its stream ends, or it
 * stays silent (no heartbeat) for longer than the standby timeout.
 */
import { CkptError } from '../core/errors.js';
import type { CheckedHello } from '../core/request-checks.js';
import type { Session, SessionChannel } from './sessions.js';

/** One waiting standby. */
export interface Standby {
  readonly hello: CheckedHello;
  readonly channel: SessionChannel;
  /** Called once the standby is attached, with its session. */
  promoted(session: Session): void;
}

/** What the stream of a waiting standby holds: it records heartbeats and withdraws the standby. */
export interface StandbyTicket {
  /** The standby sent a heartbeat now. */
  heard(): void;
  /** The stream ended: the standby is forgotten. */
  withdraw(): void;
}

interface Waiting extends Standby {
  lastHeardMs: number;
}

/** The waiting standbys, by job, in arrival order. */
export class StandbyRegistry {
  private readonly byJob = new Map<string, Set<Waiting>>();

  /** Adds a standby, heard from now; `now` is the clock. Returns its ticket. */
  add(standby: Standby, now: () => number): StandbyTicket {
    const entry: Waiting = { ...standby, lastHeardMs: now() };
    const jobId = standby.hello.jobId;
    const waiting = this.byJob.get(jobId) ?? new Set<Waiting>();
    waiting.add(entry);
    this.byJob.set(jobId, waiting);
    return {
      heard: () => {
        entry.lastHeardMs = now();
      },
      withdraw: () => this.remove(entry),
    };
  }

  private remove(standby: Waiting): void {
    const waiting = this.byJob.get(standby.hello.jobId);
    waiting?.delete(standby);
    if (waiting?.size === 0) this.byJob.delete(standby.hello.jobId);
  }

  /** The standbys of a job, oldest first. */
  ofJob(jobId: string): Standby[] {
    return [...(this.byJob.get(jobId) ?? [])];
  }

  /** Removes and returns the standbys not heard from for longer than `timeoutMs`. */
  silent(nowMs: number, timeoutMs: number): Standby[] {
    const gone: Waiting[] = [];
    for (const waiting of this.byJob.values()) {
      for (const s of waiting) if (nowMs - s.lastHeardMs > timeoutMs) gone.push(s);
    }
    for (const s of gone) this.remove(s);
    return gone;
  }

  /** Ends every standby, or those of `jobId`, with `error`, and forgets them. */
  endAll(error: CkptError, jobId?: string): void {
    const ending = jobId === undefined ? [...this.byJob.values()].flatMap((s) => [...s]) : this.entries(jobId);
    for (const standby of ending) {
      this.remove(standby);
      standby.channel.end(error);
    }
  }

  private entries(jobId: string): Waiting[] {
    return [...(this.byJob.get(jobId) ?? [])];
  }

  /**
   * Attaches, oldest first, the standbys of `jobId` whose tasks are all
   * free now (`free`), with `attach`, and tells each its session. One that
   * `free` or `attach` refuses is ended with the refusal.
   */
  promote(jobId: string, free: (hello: CheckedHello) => boolean, attach: (standby: Standby) => Session): void {
    for (const standby of this.entries(jobId)) {
      let session: Session;
      try {
        if (!free(standby.hello)) continue;
        this.remove(standby);
        session = attach(standby);
      } catch (err) {
        this.remove(standby);
        standby.channel.end(CkptError.from(err));
        continue;
      }
      standby.promoted(session);
    }
  }
}
