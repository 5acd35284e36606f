/**
 * Worker sessions: one per `Attach` stream. A session is created by a
 * worker's hello, kept alive by heartbeats, and ends when the stream ends
 * or a heartbeat is overdue. Each has a secret token, issued in its
 * welcome, that acknowledgement and decline calls must carry.
 */
import { randomBytes, randomUUID } from 'node:crypto';
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
  /** The secret acknowledgement and decline calls for the session's tasks carry. */
  readonly token: string;
  readonly workerId: string;
  readonly jobId: string;
  readonly taskIds: readonly string[];
  readonly taskSet: ReadonlySet<string>;
  readonly channel: SessionChannel;
  /** When the session was opened, on the coordinator's clock. */
  readonly openedAtMs: number;
  lastHeartbeatMs: number;
  /**
   * While the worker reports task health: when it began, and when it last
   * reported each task. Undefined while it reports none (its tasks restore).
   */
  taskReports?: { sinceMs: number; lastMs: Map<string, number> };
}

/** What a new session is made of. */
export interface SessionInit {
  workerId: string;
  jobId: string;
  taskIds: readonly string[];
  channel: SessionChannel;
  nowMs: number;
}

/** The live sessions, by id, by token and by worker. */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byToken = new Map<string, Session>();
  private readonly byWorker = new Map<string, Session>();

  /** Live sessions. */
  get size(): number {
    return this.byId.size;
  }

  /**
   * Registers a session; a worker id has at most one session per job. A
   * second one is refused with TASK_ALREADY_ATTACHED, retryable: a worker
   * that attaches again before the coordinator noticed its previous stream
   * end cannot avoid it, and succeeds once that session ended.
   */
  add(init: SessionInit): Session {
    const worker = workerKey(init.jobId, init.workerId);
    if (this.byWorker.has(worker)) {
      throw new CkptError('TASK_ALREADY_ATTACHED', `this worker id already has a session for job ${init.jobId}`, {
        jobId: init.jobId,
        retryable: true,
      });
    }
    const session: Session = {
      sessionId: randomUUID(),
      token: randomBytes(32).toString('base64url'),
      workerId: init.workerId,
      jobId: init.jobId,
      taskIds: init.taskIds,
      taskSet: new Set(init.taskIds),
      channel: init.channel,
      openedAtMs: init.nowMs,
      lastHeartbeatMs: init.nowMs,
    };
    this.byId.set(session.sessionId, session);
    this.byToken.set(session.token, session);
    this.byWorker.set(worker, session);
    return session;
  }

  get(sessionId: string): Session | undefined {
    return this.byId.get(sessionId);
  }

  /** The live session a token was issued to. */
  byTokenOf(token: string): Session | undefined {
    return token === '' ? undefined : this.byToken.get(token);
  }

  /** Removes a session; returns it if it was live. */
  remove(sessionId: string): Session | undefined {
    const session = this.byId.get(sessionId);
    if (session === undefined) return undefined;
    this.byId.delete(sessionId);
    this.byToken.delete(session.token);
    this.byWorker.delete(workerKey(session.jobId, session.workerId));
    return session;
  }

  /** Sessions of one job. */
  ofJob(jobId: string): Session[] {
    return [...this.byId.values()].filter((s) => s.jobId === jobId);
  }

  /** Number of sessions of each job that has any. */
  countByJob(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.byId.values()) counts.set(s.jobId, (counts.get(s.jobId) ?? 0) + 1);
    return counts;
  }

  /** Sessions whose last heartbeat is older than `timeoutMs`. */
  overdue(nowMs: number, timeoutMs: number): Session[] {
    return [...this.byId.values()].filter((s) => nowMs - s.lastHeartbeatMs > timeoutMs);
  }

  all(): Session[] {
    return [...this.byId.values()];
  }
}

function workerKey(jobId: string, workerId: string): string {
  return `${jobId}\n${workerId}`;
}
