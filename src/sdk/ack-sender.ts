/**
 * Sending a worker's batched acknowledgements and declines, as messages in
 * the worker's session while it is open, else as calls. A send that
 * fails because the coordinator is unreachable (a restart) is retried with
 * backoff while its epoch is still the worker's; a batch of an epoch that
 * is no longer current is dropped.
 */
import { toCkptError, type CoordinatorClient } from '../client/index.js';
import type { CkptError } from '../core/errors.js';
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { Logger } from '../log/index.js';
import type { AckBatch } from './ack-batcher.js';
import { backoffDelayMs, sleep, type BackoffConfig } from './backoff.js';
import type { WorkerEventMap } from './events.js';
import type { WorkerSession } from './session.js';

/** What an ack sender needs. */
export interface AckSenderOptions {
  client: CoordinatorClient;
  /** The worker's session, for `acknowledgeVia: 'session'`. */
  session: Pick<WorkerSession, 'connected' | 'request'>;
  acknowledgeVia: 'session' | 'call';
  jobId: string;
  workerId: string;
  deadlineMs: number;
  retryTimeoutMs: number;
  backoff: BackoffConfig;
  /** True while `epoch` is the worker's epoch. */
  isCurrent(epoch: number): boolean;
  /** Aborted when the worker stops. */
  signal: AbortSignal;
  logger: Logger;
  onAcked(event: WorkerEventMap['checkpoint-acked'][0]): void;
  onDeclined(event: WorkerEventMap['checkpoint-declined'][0]): void;
  onFailed(event: WorkerEventMap['ack-failed'][0]): void;
}

/** A `send` function for an `AckBatcher`; it never rejects. */
export function createAckSender(o: AckSenderOptions): (batch: AckBatch) => Promise<void> {
  return async (batch) => {
    const { checkpointId, epoch } = batch;
    if (!o.isCurrent(epoch)) {
      o.logger.debug({ checkpointId, epoch }, 'results of an old epoch dropped');
      return;
    }
    const base = { jobId: o.jobId, workerId: o.workerId, checkpointId, epoch };
    if (batch.declines.length > 0) {
      const taskIds = batch.declines.map((d) => d.taskId);
      try {
        await withRetry(o, epoch, () =>
          viaSession(o)
            ? o.session.request({ decline: { checkpointId, epoch, declines: batch.declines } }, o.deadlineMs)
            : o.client.declineCheckpoint({ ...base, declines: batch.declines }, callOptions(o)),
        );
        o.onDeclined({ checkpointId, epoch, taskIds, messages: batch.declines.map((d) => d.message) });
      } catch (err) {
        failed(o, { checkpointId, epoch, taskIds }, err);
      }
    }
    if (batch.acks.length === 0) return;
    const taskIds = batch.acks.map((s) => s.taskId ?? '');
    try {
      const response: AcknowledgeCheckpointResponse__Output = await withRetry(o, epoch, () =>
        viaSession(o)
          ? o.session.request({ acknowledge: { checkpointId, epoch, snapshots: batch.acks } }, o.deadlineMs)
          : o.client.acknowledgeCheckpoint({ ...base, snapshots: batch.acks }, callOptions(o)),
      );
      o.onAcked({ checkpointId, epoch, taskIds, snapshots: batch.acks, response });
    } catch (err) {
      failed(o, { checkpointId, epoch, taskIds }, err);
    }
  };
}

/** In the session when so configured and a stream is open; else as a call (while reconnecting, say). */
function viaSession(o: AckSenderOptions): boolean {
  return o.acknowledgeVia === 'session' && o.session.connected;
}

function callOptions(o: AckSenderOptions): { deadlineMs: number; signal: AbortSignal } {
  return { deadlineMs: o.deadlineMs, signal: o.signal };
}

async function withRetry<T>(o: AckSenderOptions, epoch: number, call: () => Promise<T>): Promise<T> {
  const until = Date.now() + o.retryTimeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await call();
    } catch (err) {
      const error = toCkptError(err);
      const delay = backoffDelayMs(o.backoff, attempt);
      const giveUp = !error.retryable || !o.isCurrent(epoch) || o.signal.aborted || Date.now() + delay > until;
      if (giveUp) throw error;
      o.logger.debug({ err: error, attempt }, 'acknowledgement call failed; retrying');
      await sleep(delay, o.signal);
    }
  }
}

function failed(
  o: AckSenderOptions,
  call: { checkpointId: number; epoch: number; taskIds: string[] },
  err: unknown,
): void {
  const error: CkptError = toCkptError(err);
  o.logger.debug({ err: error, checkpointId: call.checkpointId }, 'acknowledgement not accepted');
  o.onFailed({ ...call, error });
}
