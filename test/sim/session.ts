/**
 * A worker session over the raw `Attach` stream: hello, welcome, heartbeats,
 * the coordinator's commands, and acknowledgements sent in the session.
 */
import type { RestoreCommand__Output } from '../../src/gen/ckpt/v1/RestoreCommand.js';
import type { StartCommand__Output } from '../../src/gen/ckpt/v1/StartCommand.js';
import {
  SessionRequests,
  type AttachStream,
  type CoordinatorClient,
  type SessionRequestBody,
} from '../../src/client/index.js';
import type { AcknowledgeCheckpointResponse__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import { CkptError } from '../../src/core/errors.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { JobCanceledCommand__Output } from '../../src/gen/ckpt/v1/JobCanceledCommand.js';
import type { Welcome__Output } from '../../src/gen/ckpt/v1/Welcome.js';
import type { Logger } from '../../src/log/index.js';

/** Heartbeat interval when a welcome names none. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;

/** How long `end()` waits for the coordinator to close its side. */
export const SESSION_END_TIMEOUT_MS = 5000;

/** What a session needs to open. */
export interface SessionOptions {
  client: CoordinatorClient;
  jobId: string;
  workerId: string;
  taskIds: string[];
  labels: Record<string, string>;
  /** The epoch the worker's tasks run in, named in the hello; 0 (default) for none. */
  epoch?: number;
  attachTimeoutMs: number;
  logger: Logger;
  onCanceled(command: JobCanceledCommand__Output): void;
  /** The coordinator asks the session's tasks to restore a checkpoint in a new epoch. */
  onRestore(command: RestoreCommand__Output): void;
  /** Every task of the job is ready: sources may start. */
  onStart(command: StartCommand__Output): void;
  /** Called once when the stream ends after the welcome; `error` unless `end()`/`cancel()` ended it. */
  onEnded(error?: Error): void;
}

/** An open session: heartbeats run until `end()` or `cancel()`. */
export class AttachSession {
  readonly welcome: Welcome__Output;
  readonly #call: AttachStream;
  readonly #logger: Logger;
  readonly #requests = new SessionRequests();
  #heartbeat: NodeJS.Timeout | undefined;
  #heartbeatsOn = true;
  #ending = false;
  #closed = false;
  readonly #done: Promise<void>;

  private constructor(call: AttachStream, welcome: Welcome__Output, options: SessionOptions) {
    this.#call = call;
    this.welcome = welcome;
    this.#logger = options.logger;
    this.#done = new Promise((resolve) =>
      call.once('close', () => {
        this.#closed = true;
        this.#requests.failAll('the stream closed');
        resolve();
      }),
    );
    call.on('data', (message: AttachResponse__Output) => {
      if (message.result) this.#requests.onResult(message.result);
      if (message.canceled) options.onCanceled(message.canceled);
      if (message.restore) options.onRestore(message.restore);
      if (message.start) options.onStart(message.start);
    });
    call.on('error', (err: Error) => {
      this.#stopHeartbeats();
      if (!this.#ending) options.onEnded(err);
    });
    call.on('end', () => {
      this.#stopHeartbeats();
      if (!this.#ending) options.onEnded();
    });
    const intervalMs = welcome.heartbeatIntervalMs > 0 ? welcome.heartbeatIntervalMs : DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.#heartbeat = setInterval(() => this.#beat(), intervalMs);
  }

  /**
   * Opens `Attach`, sends the hello and resolves with the session once the
   * welcome arrives. Rejects with the stream's `ServiceError` if the
   * coordinator refuses, or after `attachTimeoutMs`.
   */
  static async open(options: SessionOptions): Promise<AttachSession> {
    const call = options.client.attach();
    call.write({
      hello: {
        workerId: options.workerId,
        jobId: options.jobId,
        taskIds: options.taskIds,
        labels: options.labels,
        epoch: options.epoch ?? 0,
      },
    });
    try {
      // The session is built in the welcome's own event, so no later message or error goes unheard.
      return await awaitWelcome(call, options.attachTimeoutMs, (welcome) => new AttachSession(call, welcome, options));
    } catch (err) {
      call.on('error', () => {});
      call.cancel();
      throw err;
    }
  }

  /** Reports tasks restored and ready in `epoch`. */
  sendReady(epoch: number, taskIds: string[]): void {
    if (!this.#closed) this.#call.write({ ready: { epoch, taskIds } });
  }

  /** True until the stream has closed. */
  get open(): boolean {
    return !this.#closed;
  }

  /**
   * Sends an acknowledgement or decline in the session and resolves with its
   * result (see `SessionRequests`).
   */
  request(body: SessionRequestBody, timeoutMs: number): Promise<AcknowledgeCheckpointResponse__Output> {
    return this.#requests.send((request) => this.#call.write(request), body, timeoutMs);
  }

  /** Reports a failed task. */
  sendFailure(epoch: number, taskId: string, message: string): void {
    if (!this.#closed) this.#call.write({ failure: { epoch, taskId, message } });
  }

  /** Pauses or resumes heartbeats, so tests can make the session miss them. */
  setHeartbeats(enabled: boolean): void {
    this.#heartbeatsOn = enabled;
  }

  /** Ends the session cleanly: half-closes and waits for the coordinator to close its side. */
  async end(): Promise<void> {
    this.#ending = true;
    this.#stopHeartbeats();
    if (this.#closed) return;
    this.#call.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, SESSION_END_TIMEOUT_MS);
    });
    await Promise.race([this.#done, timeout]);
    clearTimeout(timer);
    this.#call.cancel();
  }

  /** Drops the session at once (the coordinator sees CANCELLED). */
  cancel(): void {
    this.#ending = true;
    this.#stopHeartbeats();
    this.#call.cancel();
  }

  #beat(): void {
    if (!this.#heartbeatsOn) return;
    try {
      this.#call.write({ heartbeat: { sentAtMs: Date.now() } });
    } catch (err) {
      this.#logger.debug({ err }, 'heartbeat not sent');
    }
  }

  #stopHeartbeats(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }
}

/** Resolves with `onWelcome` of the first response, which must be a welcome. */
function awaitWelcome<T>(
  call: AttachStream,
  timeoutMs: number,
  onWelcome: (welcome: Welcome__Output) => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      call.off('data', onData);
      call.off('error', onError);
      call.off('end', onEnd);
    };
    const onData = (message: AttachResponse__Output): void => {
      cleanup();
      if (message.welcome) resolve(onWelcome(message.welcome));
      else reject(new CkptError('MALFORMED', `expected a welcome, got ${message.body ?? 'nothing'}`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new CkptError('UNAVAILABLE', 'the coordinator ended the session before its welcome', { retryable: true }));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new CkptError('UNAVAILABLE', `no welcome within ${timeoutMs} ms`, { retryable: true }));
    }, timeoutMs);
    call.on('data', onData);
    call.on('error', onError);
    call.on('end', onEnd);
  });
}
