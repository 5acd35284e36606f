/**
 * Acknowledgements and declines sent inside a worker's `Attach` session
 * instead of as calls of their own: a message on a stream that is open
 * anyway costs both ends far less than a unary call. Each request carries an
 * id; the coordinator answers with a `SessionResult` of that id. A request
 * the session cannot answer (it ended, or the result is late) fails with
 * UNAVAILABLE, retryable: the acknowledgement may or may not have been
 * recorded, and repeating it is a no-op.
 */
import { CkptError, type ErrorReason } from '../core/errors.js';
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { SessionResult__Output } from '../gen/ckpt/v1/SessionResult.js';
import type { TaskDecline } from '../gen/ckpt/v1/TaskDecline.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import { REASONS } from './error-reason.js';

/** One acknowledgement or decline of one checkpoint, as the session sends it. */
export type SessionRequestBody =
  | { acknowledge: { epoch: number; checkpointId: number; snapshots: TaskSnapshot[] } }
  | { decline: { epoch: number; checkpointId: number; declines: TaskDecline[] } };

interface Pending {
  resolve(response: AcknowledgeCheckpointResponse__Output): void;
  reject(error: CkptError): void;
  timer: NodeJS.Timeout;
}

const NO_FIGURES: AcknowledgeCheckpointResponse__Output = { acknowledgedTasks: 0, totalTasks: 0, duplicates: 0 };

/** The requests of one session stream waiting for their results. */
export class SessionRequests {
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  /** Requests waiting for their result. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Writes `body` with a fresh request id through `write` and resolves with
   * the result's figures (zeros for a decline). Rejects with the refusal as
   * a `CkptError`, or with UNAVAILABLE (retryable) when `write` throws, the
   * session ends first, or no result comes within `timeoutMs`.
   */
  send(
    write: (request: AttachRequest) => void,
    body: SessionRequestBody,
    timeoutMs: number,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    const requestId = this.#nextId++;
    const ids = 'acknowledge' in body ? body.acknowledge : body.decline;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(unanswered(`no result within ${timeoutMs} ms`, ids));
      }, timeoutMs);
      this.#pending.set(requestId, { resolve, reject, timer });
      try {
        write(
          'acknowledge' in body
            ? { acknowledge: { requestId, ...body.acknowledge } }
            : { decline: { requestId, ...body.decline } },
        );
      } catch (err) {
        this.#settle(requestId)?.reject(unanswered(`not sent: ${CkptError.from(err).message}`, ids));
      }
    });
  }

  /** Settles the request a result names; a result of no waiting request is ignored. */
  onResult(result: SessionResult__Output): void {
    const pending = this.#settle(result.requestId);
    if (pending === undefined) return;
    if (result.errorReason === 'ERROR_REASON_UNSPECIFIED') {
      pending.resolve(result.acknowledged ?? NO_FIGURES);
      return;
    }
    const name = String(result.errorReason).replace(/^ERROR_REASON_/, '');
    const reason: ErrorReason = REASONS.has(name) ? (name as ErrorReason) : 'INTERNAL';
    pending.reject(new CkptError(reason, result.errorMessage, { retryable: result.retryable }));
  }

  /** The session ended: every waiting request fails with UNAVAILABLE (retryable). */
  failAll(why: string): void {
    for (const id of [...this.#pending.keys()]) {
      this.#settle(id)?.reject(
        new CkptError('UNAVAILABLE', `the session ended before the result: ${why}`, { retryable: true }),
      );
    }
  }

  #settle(requestId: number): Pending | undefined {
    const pending = this.#pending.get(requestId);
    if (pending === undefined) return undefined;
    this.#pending.delete(requestId);
    clearTimeout(pending.timer);
    return pending;
  }
}

function unanswered(why: string, ids: { epoch: number; checkpointId: number }): CkptError {
  return new CkptError('UNAVAILABLE', `acknowledgement in the session: ${why}`, {
    checkpointId: ids.checkpointId,
    epoch: ids.epoch,
    retryable: true,
  });
}
