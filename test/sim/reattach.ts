/**
 * Attaching a simulated worker again after its session ended: with
 * backoff, following the leader among the coordinator addresses, until a
 * session opens, the refusal is final, or the worker stops.
 */
import * as grpc from '@grpc/grpc-js';
import { errorInfo, errorReason, FINAL_SESSION_REASONS } from '../../src/client/index.js';
import type { CoordinatorClient } from '../../src/client/index.js';
import { backoffDelayMs, type BackoffConfig } from '../../src/core/backoff.js';
import type { Logger } from '../../src/log/index.js';
import { AttachSession, type SessionOptions } from './session.js';

/** The pauses between attach attempts: from 50 ms, doubling up to 1 s. */
const REATTACH_BACKOFF: BackoffConfig = { initialDelayMs: 50, maxDelayMs: 1000, multiplier: 2, jitter: 0 };

/** True when a session ended by `error` may be opened again. */
export function mayReattach(error: Error | undefined): boolean {
  const reason = error === undefined ? undefined : errorReason(error);
  return reason === undefined || !FINAL_SESSION_REASONS.has(reason);
}

/**
 * Opens a session again. `options()` gives the options of each attempt
 * (the hello names the worker's epoch of the moment); `accept` may refuse
 * a welcome (of a deposed leader), which counts as a failed attempt.
 * Resolves with the session, or undefined when the refusal is final or
 * `signal` aborts.
 */
export async function reattach(
  client: CoordinatorClient,
  options: () => SessionOptions,
  accept: (session: AttachSession) => boolean,
  signal: AbortSignal,
  logger: Logger,
): Promise<AttachSession | undefined> {
  for (let attempt = 0; !signal.aborted; attempt += 1) {
    await pause(backoffDelayMs(REATTACH_BACKOFF, attempt), signal);
    if (signal.aborted) return undefined;
    try {
      const session = await AttachSession.open(options());
      if (signal.aborted) {
        session.cancel();
        return undefined;
      }
      if (accept(session)) return session;
      session.cancel();
    } catch (err) {
      if (!mayReattach(err instanceof Error ? err : undefined)) {
        logger.warn({ err }, 'attach refused for good');
        return undefined;
      }
      client.followLeader(err);
      logger.debug({ err, attempt, address: client.address }, 'attach failed; trying again');
    }
  }
  return undefined;
}

/**
 * Opens the first session, and while `follow` is set, again after a
 * refusal of a standby or a coordinator out of reach, following the
 * leader, until `timeoutMs` is up. Rejects with the last refusal.
 */
export async function openFollowing(
  client: CoordinatorClient,
  options: () => SessionOptions,
  follow: boolean,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<AttachSession> {
  const until = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await AttachSession.open(options());
    } catch (err) {
      const delay = backoffDelayMs(REATTACH_BACKOFF, attempt);
      const unreachable = errorInfo(err)?.code === grpc.status.UNAVAILABLE;
      if (!follow || !unreachable || signal.aborted || Date.now() + delay > until) throw err;
      client.followLeader(err);
      await pause(delay, signal);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
