/**
 * Worker sessions: one per `Attach` stream. A session is created by a
 * worker's hello, kept alive by heartbeats, and ends when the stream ends
 * or a heartbeat is overdue.
 */
import { randomUUID } from 'node:crypto';
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import { CkptError } from '../core/errors.js';

/** How the coordinator talks back to a session's stream. */
export interface SessionChannel {
  /** Sends a message to the worker. */
  send(message: AttachResponse): void;
  /** Ends the stream, with an error when the coordinator ends it for a reason. */
  end(error?: CkptError): void;
}

/** A live worker session. */
export interface Session {
  readonly sessionId: string;
  readonly workerId: string;
  readonly jobId: string;
  readonly taskIds: readonly string[];
  readonly channel: SessionChannel;
  lastHeartbeatMs: number;
  /**
   * While the worker reports task health: when it began, and when it last
   * reported each task. Undefined while it reports none (its tasks restore).
   */
  taskReports?: { sinceMs: number; lastMs: Map<string, number> };
}

/** The live sessions, by id and by worker. */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();

  /** Registers a session; a worker id has at most one session per job. */
  add(workerId: string, jobId: string, taskIds: readonly string[], channel: SessionChannel, nowMs: number): Session {
    for (const s of this.byId.values()) {
      if (s.workerId === workerId && s.jobId === jobId) {
        throw new CkptError('TASK_ALREADY_ATTACHED', `worker ${workerId} already has a session for job ${jobId}`, {
          jobId,
        });
      }
    }
    const session: Session = { sessionId: randomUUID(), workerId, jobId, taskIds, channel, lastHeartbeatMs: nowMs };
    this.byId.set(session.sessionId, session);
    return session;
  }

  get(sessionId: string): Session | undefined {
    return this.byId.get(sessionId);
  }

  /** Removes a session; returns it if it was live. */
  remove(sessionId: string): Session | undefined {
    const session = this.byId.get(sessionId);
    this.byId.delete(sessionId);
    return session;
  }

  /** Sessions of one job. */
  ofJob(jobId: string): Session[] {
    return [...this.byId.values()].filter((s) => s.jobId === jobId);
  }

  /** Sessions whose last heartbeat is older than `timeoutMs`. */
  overdue(nowMs: number, timeoutMs: number): Session[] {
    return [...this.byId.values()].filter((s) => nowMs - s.lastHeartbeatMs > timeoutMs);
  }

  all(): Session[] {
    return [...this.byId.values()];
  }
}
