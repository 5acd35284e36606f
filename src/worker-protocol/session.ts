/**
 * The worker's session with the coordinator over the `Attach` stream:
 * hello, welcome, heartbeats and the coordinator's commands. A session
 * lost to a coordinator restart, a change of leader or an outage is opened
 * again with backoff, at the leader a standby names or else at the next
 * coordinator address; the hello then names the epoch the worker's tasks
 * run in, so that the coordinator can let them carry on. Welcomes and
 * commands of a lower leader term than the highest seen come from a
 * deposed leader and are refused or dropped. A standby heartbeats while it
 * waits for its welcome, so that the coordinator keeps it.
 *
 * A coordinator that goes silent (paused, frozen, cut off without a reset)
 * ends the session through the client's HTTP/2 keepalive (see
 * `DEFAULT_KEEPALIVE`); its address is then not followed for a few seconds
 * when a standby still names it, and an attach to an address that accepts
 * the connection but does not set it up gives up after
 * `CONNECT_TIMEOUT_MS`.
 */
import { LeaderTerms } from '../bus/index.js';
import {
  SessionRequests,
  type AttachStream,
  type CoordinatorClient,
  type SessionRequestBody,
  CONNECT_TIMEOUT_MS,
  errorInfo,
  silentAddressError,
} from '../client/index.js';
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import type { TaskHealth } from '../gen/ckpt/v1/TaskHealth.js';
import type { Welcome__Output } from '../gen/ckpt/v1/Welcome.js';
import type { Logger } from '../log/index.js';
import { awaitWelcome, isFatal, sessionError } from './attach.js';
import { sleep } from './sleep.js';

/** Heartbeat interval when a welcome names none. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;

/** How long `close()` waits for the coordinator to close its side. */
export const SESSION_END_TIMEOUT_MS = 5000;

/**
 * How often a standby heartbeats while it waits for its welcome: the
 * coordinator ends a standby silent for its standby timeout (10 s by
 * default), and wants one at least every second.
 */
export const STANDBY_HEARTBEAT_INTERVAL_MS = 500;

/** What the session reports to its worker. */
export interface SessionHandlers {
  /** The epoch to name in a hello. */
  helloEpoch(): number;
  /** How the worker's tasks are doing, sent with every heartbeat; empty before the tasks run. */
  taskHealth(): TaskHealth[];
  /** A welcome arrived; `resumed` after a reconnect. Called before any command of that stream. */
  onWelcome(welcome: Welcome__Output, resumed: boolean): void;
  /** A command (restore, start, canceled, discard, list state). */
  onCommand(message: AttachResponse__Output): void;
  /** The stream was lost; the session reconnects unless `reconnect` is false. */
  onLost(error: CkptError): void;
  /** A heartbeat of the welcomed session was written. */
  onHeartbeat?(sentAtMs: number): void;
  /** A command of a deposed leader's term was dropped. */
  onStaleCommand?(message: AttachResponse__Output, term: number): void;
  /** The coordinator refused the session for good; it will not reconnect. */
  onFatal(error: CkptError): void;
}

/** What a session needs. */
export interface SessionOptions {
  client: CoordinatorClient;
  jobId: string;
  workerId: string;
  taskIds: readonly string[];
  labels: Record<string, string>;
  /**
   * The first attach is a standby's: its welcome comes only once the
   * worker's tasks are free, so it is waited for without a deadline, and
   * `open` retries refusals that may heal without one. Later attaches
   * (after a lost session) are a running worker's.
   */
  standby?: boolean;
  /** How long one attempt waits for the welcome. */
  attachTimeoutMs: number;
  /**
   * Open a lost session again. Default true; false leaves the worker
   * detached after `onLost` (a test double that stands for a worker
   * without reconnects).
   */
  reconnect?: boolean;
  backoff: BackoffConfig;
  logger: Logger;
  handlers: SessionHandlers;
}

/** The worker's session, reconnecting until closed. */
export class WorkerSession {
  readonly #o: SessionOptions;
  readonly #closing = new AbortController();
  readonly #outbox: AttachRequest[] = [];
  readonly #terms = new LeaderTerms();
  readonly #requests = new SessionRequests();
  #call: AttachStream | undefined;
  /** The address of the open stream. */
  #callAddress = '';
  #welcome: Welcome__Output | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #heartbeatsPaused = false;
  #reconnecting: Promise<void> | undefined;
  #opened = false;

  /** See `SessionOptions`. */
  constructor(options: SessionOptions) {
    this.#o = options;
  }

  /** The highest leader term the session has seen. */
  get terms(): LeaderTerms {
    return this.#terms;
  }

  /** True while a stream is open and welcomed. */
  get connected(): boolean {
    return this.#call !== undefined;
  }

  /** The token of the welcomed session, for acknowledgement and decline calls; empty while none is. */
  get sessionToken(): string {
    return this.#call === undefined ? '' : (this.#welcome?.sessionToken ?? '');
  }

  /** The latest welcome; undefined before the first. */
  get welcome(): Welcome__Output | undefined {
    return this.#welcome;
  }

  /**
   * Stops (or resumes) the heartbeats while the stream stays open, so that
   * the coordinator's heartbeat timeout can be shown to end the session.
   */
  pauseHeartbeats(paused: boolean): void {
    this.#heartbeatsPaused = paused;
  }

  /**
   * Opens the session: retries refusals that may heal with backoff until
   * `deadlineMs` from now, and resolves with the first welcome. Rejects with
   * the refusal as a `CkptError` when it is final or time is up.
   */
  async open(deadlineMs: number): Promise<Welcome__Output> {
    const until = this.#o.standby === true ? Number.POSITIVE_INFINITY : Date.now() + deadlineMs;
    for (let attempt = 0; ; attempt += 1) {
      const from = this.#o.client.addressOf(this.#o.jobId);
      try {
        const welcome = await this.#attachOnce(false);
        this.#opened = true;
        return welcome;
      } catch (err) {
        const error = sessionError(err);
        const delay = backoffDelayMs(this.#o.backoff, attempt);
        if (isFatal(error) || Date.now() + delay > until || this.#closing.signal.aborted) throw error;
        const refused = this.#o.client.followLeader(err, from, this.#o.jobId);
        if (refused !== undefined) throw refused;
        this.#o.logger.debug(
          { err: error, attempt, address: this.#o.client.addressOf(this.#o.jobId) },
          'attach failed; retrying',
        );
        await sleep(delay, this.#closing.signal);
      }
    }
  }

  /**
   * Sends an acknowledgement or decline in the open stream and resolves
   * with its result. Rejects with the refusal, or with UNAVAILABLE
   * (retryable) while no stream is open or when it ends before the result.
   */
  request(body: SessionRequestBody, timeoutMs: number): Promise<AcknowledgeCheckpointResponse__Output> {
    const call = this.#call;
    if (call === undefined) {
      return Promise.reject(new CkptError('UNAVAILABLE', 'the session is reconnecting', { retryable: true }));
    }
    return this.#requests.send(
      (request) => {
        if (!this.#write(call, request)) throw new Error('the session stream refused the write');
      },
      body,
      timeoutMs,
    );
  }

  /** Sends `request` now, or after the next welcome when the session is reconnecting. */
  send(request: AttachRequest): void {
    if (this.#call === undefined || !this.#write(this.#call, request)) this.#outbox.push(request);
  }

  /** Ends the session cleanly and stops reconnecting; timers are cleared. */
  async close(): Promise<void> {
    this.#closing.abort(new CkptError('SHUTTING_DOWN', 'the worker is stopping'));
    this.#stopHeartbeats();
    const call = this.#call;
    this.#call = undefined;
    this.#outbox.length = 0;
    this.#requests.failAll('the worker is stopping');
    await this.#reconnecting?.catch(() => {});
    if (call === undefined) return;
    const closed = new Promise<void>((resolve) => call.once('close', resolve));
    call.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SESSION_END_TIMEOUT_MS);
    });
    await Promise.race([closed, timeout]);
    clearTimeout(timer);
    call.cancel();
  }

  /** Drops the session at once, as a crashed process would (the coordinator sees it cancelled). */
  cancel(): void {
    this.#closing.abort(new CkptError('SHUTTING_DOWN', 'the worker is gone'));
    this.#stopHeartbeats();
    const call = this.#call;
    this.#call = undefined;
    this.#outbox.length = 0;
    this.#requests.failAll('the worker is gone');
    call?.cancel();
  }

  /**
   * One attempt: opens the stream, sends the hello, resolves on the welcome.
   * An address that accepts the connection but does not answer it within
   * `CONNECT_TIMEOUT_MS` (a paused process) fails the attempt as a
   * transport failure, without waiting for the attach timeout.
   */
  async #attachOnce(resumed: boolean): Promise<Welcome__Output> {
    const address = this.#o.client.addressOf(this.#o.jobId);
    if (!(await this.#o.client.settleConnection(CONNECT_TIMEOUT_MS, this.#o.jobId))) {
      throw silentAddressError(address, CONNECT_TIMEOUT_MS);
    }
    if (this.#closing.signal.aborted) throw new CkptError('SHUTTING_DOWN', 'the session is closing');
    const call = this.#o.client.attach({}, this.#o.jobId);
    call.on('error', () => {});
    const standby = this.#o.standby === true && !this.#opened;
    const hello = {
      workerId: this.#o.workerId,
      jobId: this.#o.jobId,
      taskIds: [...this.#o.taskIds],
      labels: this.#o.labels,
      epoch: this.#o.handlers.helloEpoch(),
      standby,
    };
    call.write({ hello });
    // Closing the session gives up on a welcome that has not come yet.
    const onClose = (): void => call.cancel();
    this.#closing.signal.addEventListener('abort', onClose, { once: true });
    const timeoutMs = standby ? undefined : this.#o.attachTimeoutMs;
    const beat = standby ? this.#standbyHeartbeats(call) : undefined;
    return awaitWelcome(call, timeoutMs, (welcome) => {
      clearInterval(beat);
      return this.#bind(call, address, welcome, resumed);
    })
      .catch((err: unknown) => {
        call.cancel();
        throw err;
      })
      .finally(() => {
        clearInterval(beat);
        this.#closing.signal.removeEventListener('abort', onClose);
      });
  }

  /** Heartbeats without tasks while a standby waits for its welcome. */
  #standbyHeartbeats(call: AttachStream): NodeJS.Timeout {
    return setInterval(() => {
      this.#write(call, { heartbeat: { sentAtMs: Date.now(), tasks: [] } });
    }, STANDBY_HEARTBEAT_INTERVAL_MS);
  }

  /** Runs in the welcome's own event, so no later message of the stream goes unheard. */
  #bind(call: AttachStream, address: string, welcome: Welcome__Output, resumed: boolean): Welcome__Output {
    if (this.#closing.signal.aborted) throw new CkptError('SHUTTING_DOWN', 'the session is closing');
    if (!this.#terms.admit(welcome.term)) {
      throw new CkptError('NOT_LEADER', `welcome of term ${welcome.term} from a deposed leader`, { retryable: true });
    }
    this.#call = call;
    this.#callAddress = address;
    this.#welcome = welcome;
    call.on('data', (message: AttachResponse__Output) => {
      if (message.result) this.#requests.onResult(message.result);
      else if (message.welcome === undefined || message.welcome === null) this.#command(message);
    });
    call.on('error', (err: Error) => this.#ended(call, err));
    call.on('end', () =>
      this.#ended(call, new CkptError('UNAVAILABLE', 'the coordinator ended the session', { retryable: true })),
    );
    const intervalMs = welcome.heartbeatIntervalMs > 0 ? welcome.heartbeatIntervalMs : DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.#stopHeartbeats();
    this.#heartbeat = setInterval(() => {
      if (this.#heartbeatsPaused) return;
      const sentAtMs = Date.now();
      if (this.#write(call, { heartbeat: { sentAtMs, tasks: this.#o.handlers.taskHealth() } })) {
        this.#o.handlers.onHeartbeat?.(sentAtMs);
      }
    }, intervalMs);
    this.#o.handlers.onWelcome(welcome, resumed);
    for (const request of this.#outbox.splice(0)) this.#write(call, request);
    return welcome;
  }

  /** Passes a command on, unless it is of a deposed leader's term. */
  #command(message: AttachResponse__Output): void {
    const term = message.restore?.term ?? message.start?.term ?? message.discard?.term ?? message.listState?.term;
    if (term !== undefined && !this.#terms.admit(term)) {
      this.#o.logger.debug({ command: message.body, term, highest: this.#terms.highest }, 'stale command dropped');
      this.#o.handlers.onStaleCommand?.(message, term);
      return;
    }
    this.#o.handlers.onCommand(message);
  }

  #ended(call: AttachStream, err: Error): void {
    if (call !== this.#call) return;
    this.#call = undefined;
    this.#stopHeartbeats();
    this.#requests.failAll(err.message);
    call.cancel();
    if (this.#closing.signal.aborted) return;
    const error = sessionError(err);
    if (isFatal(error)) {
      this.#o.handlers.onFatal(error);
      return;
    }
    this.#o.handlers.onLost(error);
    if (this.#o.reconnect === false) return;
    const refused = this.#o.client.followLeader(err, this.#callAddress, this.#o.jobId);
    if (refused !== undefined) {
      this.#o.handlers.onFatal(refused);
      return;
    }
    this.#o.logger.warn({ err: error, address: this.#o.client.addressOf(this.#o.jobId) }, 'session lost; reconnecting');
    this.#reconnecting = this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    let from = this.#o.client.addressOf(this.#o.jobId);
    for (let attempt = 0; !this.#closing.signal.aborted; attempt += 1) {
      try {
        await sleep(backoffDelayMs(this.#o.backoff, attempt), this.#closing.signal);
        from = this.#o.client.addressOf(this.#o.jobId);
        await this.#attachOnce(this.#opened);
        this.#o.logger.info({ attempt }, 'session resumed');
        return;
      } catch (err) {
        if (this.#closing.signal.aborted) return;
        const error = sessionError(err);
        if (isFatal(error)) {
          this.#o.handlers.onFatal(error);
          return;
        }
        const refused = this.#o.client.followLeader(err, from, this.#o.jobId);
        if (refused !== undefined) {
          this.#o.handlers.onFatal(refused);
          return;
        }
        const named = errorInfo(err)?.leader;
        this.#o.logger.debug({ err: error, attempt, address: from }, 'reconnect failed');
        // Sent to the leader a standby named: try it at once, not after the grown backoff. A leader
        // still loading its jobs (TAKING_OVER) serves within moments: ask again after the first delay.
        // A standby that still names the silent leader is asked again soon: its lease runs out shortly.
        if (error.reason === 'NOT_LEADER' && named !== undefined && this.#o.client.silentAddresses.includes(named)) {
          attempt = 0;
        } else if (error.reason === 'NOT_LEADER' && this.#o.client.addressOf(this.#o.jobId) !== from) attempt = -1;
        else if (error.reason === 'TAKING_OVER') attempt = -1;
      }
    }
  }

  #write(call: AttachStream, request: AttachRequest): boolean {
    try {
      call.write(request);
      return true;
    } catch (err) {
      this.#o.logger.debug({ err }, 'session write failed');
      return false;
    }
  }

  #stopHeartbeats(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }
}
