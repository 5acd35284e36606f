/**
 * The `Attach` stream: a worker's session. The first message must be a
 * hello; heartbeats follow. The session ends when the worker ends or
 * cancels the stream, or when the coordinator ends it (heartbeat timeout,
 * shutdown), and then the worker's tasks detach.
 */
import type * as grpc from '@grpc/grpc-js';
import type { AttachRequest__Output } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { SessionResult } from '../gen/ckpt/v1/SessionResult.js';
import { CkptError } from '../core/errors.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { SessionChannel } from '../coordinator/sessions.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import { requireDecoded, statusError, type AuthCheck } from './handlers.js';

type AttachCall = grpc.ServerDuplexStream<AttachRequest__Output, AttachResponse>;

function channelOf(call: AttachCall): SessionChannel {
  return {
    send(message) {
      if (!call.writableEnded && !call.destroyed) call.write(message);
    },
    end(error) {
      if (call.writableEnded || call.destroyed) return;
      if (error === undefined) call.end();
      else call.emit('error', statusError(error));
    },
  };
}

/**
 * The result of an acknowledgement or decline sent in a session: its
 * figures, or the refusal's reason. A refusal is answered; it does not end
 * the session.
 */
function resultOf(requestId: number, run: () => Omit<SessionResult, 'requestId'> | void): SessionResult {
  try {
    return { requestId, ...(run() ?? {}) };
  } catch (err) {
    const error = CkptError.from(err);
    return {
      requestId,
      errorReason: `ERROR_REASON_${error.reason}`,
      errorMessage: error.message,
      retryable: error.retryable,
    };
  }
}

/**
 * The bidirectional `Attach` handler. The hello binds the session to the
 * leader's coordinator of the moment; that coordinator ends the session
 * when it stops.
 */
export function attachHandler(
  coordinators: CoordinatorProvider,
  auth: AuthCheck,
): grpc.handleBidiStreamingCall<AttachRequest__Output, AttachResponse> {
  return (call) => {
    const channel = channelOf(call);
    let coordinator: Coordinator | undefined;
    let sessionId: string | undefined;
    /** Set while the stream is a standby waiting for its tasks. */
    let withdraw: (() => void) | undefined;
    const fail = (err: unknown): void => {
      withdraw?.();
      withdraw = undefined;
      if (sessionId !== undefined) coordinator?.closeSession(sessionId, CkptError.from(err).message);
      sessionId = undefined;
      channel.end(CkptError.from(err));
    };
    try {
      auth(call.metadata);
    } catch (err) {
      fail(err);
      return;
    }
    call.on('data', (message: AttachRequest__Output) => {
      try {
        requireDecoded(message);
        if (withdraw !== undefined) {
          throw new CkptError('MALFORMED', 'a standby sends nothing before its welcome');
        } else if (sessionId === undefined || coordinator === undefined) {
          if (message.hello == null) throw new CkptError('MALFORMED', 'the first message of a session must be a hello');
          const current = coordinators.current();
          if (message.hello.standby) {
            const offer = current.offerStandby(message.hello, channel, (session) => {
              withdraw = undefined;
              sessionId = session.sessionId;
              coordinator = current;
            });
            if ('withdraw' in offer) withdraw = offer.withdraw;
            else [sessionId, coordinator] = [offer.session.sessionId, current];
          } else {
            sessionId = current.openSession(message.hello, channel).sessionId;
            coordinator = current;
          }
        } else if (message.heartbeat != null) {
          coordinator.heartbeat(sessionId, message.heartbeat.tasks);
        } else if (message.ready != null) {
          coordinator.tasksReady(sessionId, message.ready.epoch, message.ready.taskIds);
        } else if (message.failure != null) {
          coordinator.taskFailed(sessionId, message.failure.epoch, message.failure.taskId, message.failure.message);
        } else if (message.acknowledge != null) {
          const { requestId, ...request } = message.acknowledge;
          const session = sessionId;
          const current = coordinator;
          channel.send({
            result: resultOf(requestId, () => ({ acknowledged: current.acknowledgeInSession(session, request) })),
          });
        } else if (message.decline != null) {
          const { requestId, ...request } = message.decline;
          const session = sessionId;
          const current = coordinator;
          channel.send({ result: resultOf(requestId, () => current.declineInSession(session, request)) });
        } else {
          throw new CkptError('MALFORMED', `unexpected ${message.body ?? 'empty'} message in a session`);
        }
      } catch (err) {
        fail(err);
      }
    });
    const close = (why: string) => () => {
      withdraw?.();
      withdraw = undefined;
      if (sessionId !== undefined) coordinator?.closeSession(sessionId, why);
      sessionId = undefined;
    };
    call.on('end', () => {
      // grpc-js emits 'end' before 'cancelled' when the client cancels; decide a tick later.
      setImmediate(() => {
        if (call.cancelled) return;
        close('the worker ended its session')();
        channel.end();
      });
    });
    call.on('cancelled', close('the worker cancelled its session'));
    call.on('error', close('the session stream failed'));
  };
}
