/**
 * The coordinator's errors as a client reads them: what `toStatus` writes
 * on the server side, `errorInfo` and `toCkptError` read back with the
 * same metadata keys, including whether the request may succeed later;
 * and which refusals end a worker's attempts to attach.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { errorInfo, FINAL_SESSION_REASONS, toCkptError } from '../../src/client/index.js';
import { CkptError, type ErrorReason } from '../../src/core/errors.js';
import { isFatal, sessionError } from '../../src/worker-protocol/index.js';
import { STATUS_OF_REASON, toStatus } from '../../src/server/status.js';

/** The error a grpc-js client gets for a call the server ended with `err`. */
function received(err: unknown): grpc.ServiceError {
  const status = toStatus(err);
  const code = status.code ?? grpc.status.UNKNOWN;
  const details = status.details ?? '';
  return Object.assign(new Error(`${code} ${details}`), {
    code,
    details,
    metadata: status.metadata ?? new grpc.Metadata(),
  });
}

test('what the coordinator writes into a status, a client reads back: reason, ids, retryable, leader', (t) => {
  const limit = received(
    new CkptError('LIMIT_REACHED', 'the coordinator holds 3 sessions, its limit', { jobId: 'job', retryable: true }),
  );
  t.deepEqual(errorInfo(limit), {
    code: grpc.status.RESOURCE_EXHAUSTED,
    reason: 'LIMIT_REACHED',
    ids: { jobId: 'job' },
    message: 'LIMIT_REACHED: the coordinator holds 3 sessions, its limit',
    retryable: true,
  });
  t.like(toCkptError(limit), { reason: 'LIMIT_REACHED', retryable: true, ids: { jobId: 'job' } });

  const stale = received(new CkptError('STALE_EPOCH', 'epoch 3 is not 4', { jobId: 'job', epoch: 3, checkpointId: 7 }));
  t.like(errorInfo(stale), {
    reason: 'STALE_EPOCH',
    retryable: false,
    ids: { jobId: 'job', epoch: 3, checkpointId: 7 },
  });
  t.false(toCkptError(stale).retryable, 'a refusal without the flag is refused again');

  const standby = received(new CkptError('NOT_LEADER', 'a standby', { retryable: true, leader: 'b:2' }));
  t.like(errorInfo(standby), { code: grpc.status.UNAVAILABLE, reason: 'NOT_LEADER', retryable: true, leader: 'b:2' });
  t.like(toCkptError(standby), { reason: 'NOT_LEADER', retryable: true, leader: 'b:2' });

  const takingOver = received(new CkptError('TAKING_OVER', 'still loading its jobs', { retryable: true }));
  t.like(errorInfo(takingOver), { code: grpc.status.UNAVAILABLE, reason: 'TAKING_OVER', retryable: true });
  t.like(toCkptError(takingOver), { reason: 'TAKING_OVER', retryable: true });
});

test('a call its caller canceled is CANCELED and not retryable; a failed transport is UNAVAILABLE and retryable', (t) => {
  const call = (code: grpc.status, details = 'no reason sent'): grpc.ServiceError =>
    Object.assign(new Error(String(code)), { code, details, metadata: new grpc.Metadata() });
  t.like(toCkptError(call(grpc.status.CANCELLED, 'Cancelled on client')), { reason: 'CANCELED', retryable: false });
  t.like(toCkptError(call(grpc.status.CANCELLED, 'Call cancelled')), { reason: 'UNAVAILABLE', retryable: true });
  t.like(toCkptError(call(grpc.status.UNAVAILABLE)), { reason: 'UNAVAILABLE', retryable: true });
  t.like(toCkptError(call(grpc.status.DEADLINE_EXCEEDED)), { reason: 'UNAVAILABLE', retryable: true });
  t.is(toStatus(new CkptError('CANCELED', 'the caller stopped')).code, grpc.status.CANCELLED);
});

test('the SDK worker and the simulated worker give up on the same session refusals, and retry the rest', (t) => {
  const reasons = Object.keys(STATUS_OF_REASON) as ErrorReason[];
  for (const reason of reasons) {
    const refusal = received(new CkptError(reason, 'refused'));
    const sdkGivesUp = isFatal(sessionError(refusal));
    t.is(sdkGivesUp, FINAL_SESSION_REASONS.has(reason), reason);
  }
  t.true(FINAL_SESSION_REASONS.has('OVERSIZED'));
  t.false(FINAL_SESSION_REASONS.has('NOT_LEADER'));
  t.false(FINAL_SESSION_REASONS.has('TAKING_OVER'), 'a worker retries a coordinator that is taking over');
});
