/**
 * Sending a worker's batched acknowledgements and declines: as messages in
 * the worker's session (`acknowledgeVia: 'session'`), or as calls that
 * carry the session's token (`'call'`). A batch's acknowledgements go out
 * in runs whose estimated size stays below `maxRequestBytes`, one message
 * or call each. While no session is welcomed (it reconnects) nothing is
 * sent: a call without a live session's token would be refused, so the
 * send waits, with backoff, until the session is back. A send that fails
 * because the coordinator is unreachable is retried the same way while
 * its epoch is still the worker's; a batch of an epoch that is no longer
 * current is dropped.
 */
import { toCkptError, type CoordinatorClient } from '../client/index.js';
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../log/index.js';
import type { AckBatch } from './ack-batcher.js';
import { splitBySize } from './ack-size.js';
import type { WorkerSession } from './session.js';
import { sleep } from './sleep.js';

/** Which checkpoint, epoch and tasks a send was for. */
export interface AckCall {
  checkpointId: number;
  epoch: number;
  taskIds: string[];
}

/** What an ack sender needs. */
export interface AckSenderOptions {
  client: CoordinatorClient;
  /** The worker's session: messages go in it, calls carry its token. */
  session: Pick<WorkerSession, 'connected' | 'request' | 'sessionToken'>;
  acknowledgeVia: 'session' | 'call';
  jobId: string;
  workerId: string;
  deadlineMs: number;
  retryTimeoutMs: number;
  /** Largest estimated acknowledgement message or call (see `splitBySize`). */
  maxRequestBytes: number;
  backoff: BackoffConfig;
  /** True while `epoch` is the worker's epoch. */
  isCurrent(epoch: number): boolean;
  /** Aborted when the worker stops. */
  signal: AbortSignal;
  logger: Logger;
  /** Acknowledgements of `checkpointId` are about to be sent. */
  onSending(checkpointId: number, epoch: number): void;
  /** The coordinator accepted a send, or it was refused or given up (`accepted` false). */
  onAnswer(kind: 'ack' | 'decline', checkpointId: number, epoch: number, accepted: boolean): void;
  onAcked(event: AckCall & { snapshots: TaskSnapshot[]; response: AcknowledgeCheckpointResponse__Output }): void;
  onDeclined(event: AckCall & { messages: string[] }): void;
  onFailed(event: AckCall & { kind: 'ack' | 'decline'; error: CkptError }): void;
}

/** A `send` function for an `AckBatcher`; it never rejects. */
export function createAckSender(o: AckSenderOptions): (batch: AckBatch) => Promise<void> {
  return async (batch) => {
    const { checkpointId, epoch } = batch;
    if (!o.isCurrent(epoch)) {
      o.logger.debug({ checkpointId, epoch }, 'results of an old epoch dropped');
      return;
    }
    if (batch.declines.length > 0) await sendDeclines(o, batch);
    for (const run of splitBySize(batch.acks, o.maxRequestBytes)) await sendAcks(o, checkpointId, epoch, run);
  };
}

/**
 * Sends acknowledgements once, as the worker's tasks would, without retry
 * or size split; rejects with the refusal. For acknowledgements prepared by
 * hand (tests, benchmarks).
 */
export function acknowledgeOnce(
  o: AckSenderOptions,
  request: { checkpointId: number; epoch: number; snapshots: TaskSnapshot[] },
  deadlineMs = o.deadlineMs,
): Promise<AcknowledgeCheckpointResponse__Output> {
  return deliverAcks(o, o.session.sessionToken, request, deadlineMs);
}

async function sendDeclines(o: AckSenderOptions, batch: AckBatch): Promise<void> {
  const { checkpointId, epoch, declines } = batch;
  const taskIds = declines.map((d) => d.taskId);
  try {
    await withRetry(o, epoch, (token) => deliverDeclines(o, token, { checkpointId, epoch, declines }));
    o.onAnswer('decline', checkpointId, epoch, true);
    o.onDeclined({ checkpointId, epoch, taskIds, messages: declines.map((d) => d.message) });
  } catch (err) {
    o.onAnswer('decline', checkpointId, epoch, false);
    failed(o, { kind: 'decline', checkpointId, epoch, taskIds }, err);
  }
}

async function sendAcks(o: AckSenderOptions, checkpointId: number, epoch: number, snapshots: TaskSnapshot[]) {
  const taskIds = snapshots.map((s) => s.taskId ?? '');
  o.onSending(checkpointId, epoch);
  try {
    const response = await withRetry(o, epoch, (token) => deliverAcks(o, token, { checkpointId, epoch, snapshots }));
    o.onAnswer('ack', checkpointId, epoch, true);
    o.onAcked({ checkpointId, epoch, taskIds, snapshots, response });
  } catch (err) {
    o.onAnswer('ack', checkpointId, epoch, false);
    failed(o, { kind: 'ack', checkpointId, epoch, taskIds }, err);
  }
}

/** Acknowledgements in the session when so configured; a call with the session's token otherwise. */
function deliverAcks(
  o: AckSenderOptions,
  sessionToken: string,
  acknowledge: { checkpointId: number; epoch: number; snapshots: TaskSnapshot[] },
  deadlineMs = o.deadlineMs,
): Promise<AcknowledgeCheckpointResponse__Output> {
  if (o.acknowledgeVia === 'session') return o.session.request({ acknowledge }, deadlineMs);
  const request = { jobId: o.jobId, workerId: o.workerId, sessionToken, ...acknowledge };
  return o.client.acknowledgeCheckpoint(request, { deadlineMs, signal: o.signal });
}

/** Declines in the session when so configured; a call with the session's token otherwise. */
async function deliverDeclines(
  o: AckSenderOptions,
  sessionToken: string,
  decline: { checkpointId: number; epoch: number; declines: AckBatch['declines'] },
): Promise<void> {
  const deadlineMs = o.deadlineMs;
  if (o.acknowledgeVia === 'session') await o.session.request({ decline }, deadlineMs);
  else {
    const request = { jobId: o.jobId, workerId: o.workerId, sessionToken, ...decline };
    await o.client.declineCheckpoint(request, { deadlineMs, signal: o.signal });
  }
}

/**
 * Makes `call` with the token of the session welcomed now; while none is,
 * waits with backoff. A retryable failure, or a refusal for a token that
 * has changed since (the session was replaced), is tried again.
 */
async function withRetry<T>(
  o: AckSenderOptions,
  epoch: number,
  call: (sessionToken: string) => Promise<T>,
): Promise<T> {
  const until = Date.now() + o.retryTimeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    const sessionToken = o.session.sessionToken;
    try {
      if (!o.session.connected) {
        throw new CkptError('UNAVAILABLE', 'no session is welcomed: the worker reconnects', { retryable: true });
      }
      return await call(sessionToken);
    } catch (err) {
      const error = toCkptError(err);
      const replaced = error.reason === 'PERMISSION_DENIED' && o.session.sessionToken !== sessionToken;
      const delay = backoffDelayMs(o.backoff, attempt);
      const retry = error.retryable || replaced;
      if (!retry || !o.isCurrent(epoch) || o.signal.aborted || Date.now() + delay > until) throw error;
      o.logger.debug({ err: error, attempt }, 'acknowledgement failed; retrying');
      await sleep(delay, o.signal);
    }
  }
}

function failed(o: AckSenderOptions, call: AckCall & { kind: 'ack' | 'decline' }, err: unknown): void {
  const error: CkptError = toCkptError(err);
  o.logger.debug({ err: error, checkpointId: call.checkpointId }, 'acknowledgement not accepted');
  o.onFailed({ ...call, error });
}
