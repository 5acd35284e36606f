/**
 * `ControlBus` on NATS: the coordinator's side of the barrier plane. Each
 * control message is encoded with the ckpt.v1 protobuf codec and published
 * on `<subjectPrefix>.<jobId>.<kind>` with the epoch in the `ckpt-epoch`
 * header.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { ControlBus } from '../core/ports.js';
import type { Logger } from '../log/index.js';
import type { Trigger } from '../gen/ckpt/v1/Trigger.js';
import type { CheckpointComplete } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { CheckpointAbort } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { Recover } from '../gen/ckpt/v1/Recover.js';
import { CkptError } from '../core/errors.js';
import { connectNats } from './connect.js';
import type { NatsConnectAuth } from './nats-auth.js';
import { controlMessageCodecs } from './control-codecs.js';
import { epochHeaders } from './headers.js';
import { fromNatsError } from './nats-errors.js';
import {
  assertSubjectPrefix,
  controlPrefix,
  controlSubject,
  DEFAULT_SUBJECT_PREFIX,
  type ControlKind,
} from './subjects.js';

/** Options of `createNatsBus`. */
export interface NatsBusOptions {
  /** NATS server URLs, e.g. `['nats://127.0.0.1:4222']`. Required, at least one. */
  servers: string[];
  /** First token(s) of every subject. Default `'ckpt'`. */
  subjectPrefix?: string;
  /** Connection name shown by the NATS server. Default `'ckpt-coordinator'`. */
  name?: string;
  logger: Logger;
  /**
   * After each publish, wait at most this long for the server to confirm it
   * has processed everything sent so far (a PING/PONG round trip). 0
   * publishes without waiting. Default 5000.
   */
  confirmTimeoutMs?: number;
  /** Publish on this connection instead of opening one; `close()` leaves it open. */
  connection?: NatsConnection;
  /** Credentials and TLS of the connection the bus opens, as `loadNatsAuth` reads them. Default: none. */
  auth?: NatsConnectAuth;
}

/** Default for `NatsBusOptions.confirmTimeoutMs`. */
export const DEFAULT_CONFIRM_TIMEOUT_MS = 5000;

/** A `ControlBus` that also exposes its NATS connection. */
export interface NatsBus extends ControlBus {
  /** The connection the bus publishes on. */
  readonly connection: NatsConnection;
  /** The subject prefix in use. */
  readonly subjectPrefix: string;
}

/** `NatsBusOptions` with every default applied. */
export interface NatsBusConfig {
  servers: string[];
  subjectPrefix: string;
  name: string;
  confirmTimeoutMs: number;
}

/** Applies defaults and validates; errors name the option. */
export function resolveNatsBusOptions(options: NatsBusOptions): NatsBusConfig {
  if (options.connection === undefined && options.servers.length === 0) {
    throw new CkptError('MALFORMED', 'servers: at least one NATS server is required');
  }
  const subjectPrefix = assertSubjectPrefix(options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX, 'subjectPrefix');
  const confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
  if (!Number.isFinite(confirmTimeoutMs) || confirmTimeoutMs < 0) {
    throw new CkptError('MALFORMED', `confirmTimeoutMs: ${confirmTimeoutMs} is not a duration`);
  }
  return { servers: options.servers, subjectPrefix, name: options.name ?? 'ckpt-coordinator', confirmTimeoutMs };
}

/**
 * Connects to NATS (waiting for the first server, then reconnecting
 * forever) and returns the bus. Publishing fails with
 * `CkptError('UNAVAILABLE')`, retryable while the connection is down,
 * final after `close()`.
 */
export async function createNatsBus(options: NatsBusOptions): Promise<NatsBus> {
  const config = resolveNatsBusOptions(options);
  const logger = options.logger.child({ component: 'bus' });
  const owned = options.connection === undefined;
  const nc = options.connection ?? (await connectNats(config.servers, config.name, { logger, auth: options.auth }));
  return new NatsControlBus(nc, owned, config, logger);
}

class NatsControlBus implements NatsBus {
  readonly #codecs = controlMessageCodecs();
  /** The round trip that confirms the publishes made since the last one started, once it is sent. */
  #flushing: Promise<void> | undefined;

  constructor(
    readonly connection: NatsConnection,
    private readonly owned: boolean,
    private readonly config: NatsBusConfig,
    private readonly logger: Logger,
  ) {}

  get subjectPrefix(): string {
    return this.config.subjectPrefix;
  }

  controlPrefix(jobId: string): string {
    return controlPrefix(this.config.subjectPrefix, jobId);
  }

  publishTrigger(message: Trigger & { jobId: string }): Promise<void> {
    return this.#publish('trigger', message, () => this.#codecs.trigger.encode(message));
  }

  publishComplete(message: CheckpointComplete & { jobId: string }): Promise<void> {
    return this.#publish('complete', message, () => this.#codecs.complete.encode(message));
  }

  publishAbort(message: CheckpointAbort & { jobId: string }): Promise<void> {
    return this.#publish('abort', message, () => this.#codecs.abort.encode(message));
  }

  publishRecover(message: Recover & { jobId: string }): Promise<void> {
    return this.#publish('recover', message, () => this.#codecs.recover.encode(message));
  }

  async close(): Promise<void> {
    if (!this.owned || this.connection.isClosed()) return;
    try {
      await this.connection.drain();
    } catch (err) {
      this.logger.warn({ err }, 'drain failed; closing');
      await this.connection.close();
    }
  }

  async #publish(
    kind: ControlKind,
    message: { jobId: string; epoch?: unknown },
    encode: () => Uint8Array,
  ): Promise<void> {
    const subject = controlSubject(this.controlPrefix(message.jobId), kind);
    const epoch = Number(message.epoch ?? 0);
    let payload: Uint8Array;
    try {
      payload = encode();
    } catch (err) {
      throw new CkptError('MALFORMED', `${kind} message: ${(err as Error).message}`, {
        jobId: message.jobId,
        cause: err,
      });
    }
    try {
      this.connection.publish(subject, payload, { headers: epochHeaders(epoch) });
      if (this.config.confirmTimeoutMs > 0) await this.#confirm();
    } catch (err) {
      throw fromNatsError(err, `publish ${kind} on ${subject}`, { jobId: message.jobId, epoch });
    }
    this.logger.debug({ jobId: message.jobId, subject, epoch }, `published ${kind}`);
  }

  /**
   * Resolves when the server has processed everything published so far.
   * The server answers in order, so one round trip sent after a batch of
   * publishes confirms them all: the publishes of one turn of the event
   * loop (a thousand jobs' triggers and completes) share one.
   */
  async #confirm(): Promise<void> {
    this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.#flushing = undefined;
      return this.connection.flush();
    });
    const flushed = this.#flushing;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no confirmation from the server within ${this.config.confirmTimeoutMs} ms`)),
        this.config.confirmTimeoutMs,
      );
    });
    try {
      await Promise.race([flushed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
