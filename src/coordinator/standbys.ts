/**
 * Standby workers waiting for their tasks: each is a hello with
 * `standby` set and its open stream, kept until a session end frees every
 * task it names (then the coordinator attaches it) or its stream ends.
 */
import { CkptError } from '../core/errors.js';
import type { WorkerHello__Output } from '../gen/ckpt/v1/WorkerHello.js';
import type { Session, SessionChannel } from './sessions.js';

/** One waiting standby. */
export interface Standby {
  readonly hello: WorkerHello__Output;
  readonly channel: SessionChannel;
  /** Called once the standby is attached, with its session. */
  promoted(session: Session): void;
}

/** The waiting standbys, by job, in arrival order. */
export class StandbyRegistry {
  private readonly byJob = new Map<string, Set<Standby>>();

  /** Adds a standby; returns the function that withdraws it. */
  add(standby: Standby): () => void {
    const jobId = standby.hello.jobId;
    const waiting = this.byJob.get(jobId) ?? new Set<Standby>();
    waiting.add(standby);
    this.byJob.set(jobId, waiting);
    return () => this.remove(standby);
  }

  remove(standby: Standby): void {
    const waiting = this.byJob.get(standby.hello.jobId);
    waiting?.delete(standby);
    if (waiting?.size === 0) this.byJob.delete(standby.hello.jobId);
  }

  /** The standbys of a job, oldest first. */
  ofJob(jobId: string): Standby[] {
    return [...(this.byJob.get(jobId) ?? [])];
  }

  /** Ends every standby, or those of `jobId`, with `error`, and forgets them. */
  endAll(error: CkptError, jobId?: string): void {
    const ending = jobId === undefined ? [...this.byJob.values()].flatMap((s) => [...s]) : this.ofJob(jobId);
    for (const standby of ending) {
      this.remove(standby);
      standby.channel.end(error);
    }
  }

  /**
   * Attaches, oldest first, the standbys of `jobId` whose tasks are all
   * free now (`free`), with `attach`, and tells each its session. One that
   * `free` or `attach` refuses is ended with the refusal.
   */
  promote(jobId: string, free: (hello: WorkerHello__Output) => boolean, attach: (standby: Standby) => Session): void {
    for (const standby of this.ofJob(jobId)) {
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
