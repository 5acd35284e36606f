/**
 * Following the leader among several coordinators. A client knows one or
 * more addresses and talks to one of them at a time. A standby refuses
 * with NOT_LEADER and names the leader in the trailing metadata
 * `ckpt-leader`; the client moves there, or to its next address when no
 * leader is named or the one it talks to is unreachable, and retries the
 * call with backoff within the call's deadline.
 *
 * Which leaders are followed: an address the client was given, or any
 * address when the client checks every coordinator's certificate against
 * one server name (TLS with `serverName`). Any other address merely named
 * itself leader: the client refuses to go there, rather than send it its
 * token and its calls.
 *
 * Which leader: with several job groups (see `src/core/job-groups.ts`),
 * each group has its own leader, and a standby of a job's group names that
 * group's leader. So the router keeps the address to use per route: a
 * call that names a job goes by that job's route, and a refusal moves only
 * that route (and the default, the best guess for a job not seen yet), so
 * that calls for jobs of different groups do not send each other back and
 * forth. Calls that name no job go by the default route; any coordinator
 * answers them.
 *
 * Which calls are retried: any call that a coordinator refused with
 * NOT_LEADER, SHUTTING_DOWN or TAKING_OVER (it did nothing); idempotent
 * calls also when the coordinator marked its refusal retryable
 * (`ckpt-retryable`), when the transport failed or when the coordinator
 * reported itself UNAVAILABLE, since their repetition changes nothing. A
 * coordinator TAKING_OVER is the leader, still loading its jobs: the call
 * goes to it again, not to the next address.
 */
import * as grpc from '@grpc/grpc-js';
import { backoffDelayMs } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { CallOptions } from './call-options.js';
import { DEFAULT_DEADLINE_MS } from './call-options.js';
import { errorInfo } from './error-reason.js';

/** How a client retries calls while it looks for the leader. */
export interface LeaderRetryOptions {
  /** Longest time one call keeps retrying, within its own deadline. Default 15000 ms; 0: never retry. */
  timeoutMs?: number;
  /** Delay before the first retry. Default 50 ms. */
  initialDelayMs?: number;
  /** Largest delay between retries; delays double up to it. Default 1000 ms. */
  maxDelayMs?: number;
}

/** The defaults of `LeaderRetryOptions`. */
export const DEFAULT_LEADER_RETRY: Required<LeaderRetryOptions> = {
  timeoutMs: 15_000,
  initialDelayMs: 50,
  maxDelayMs: 1000,
};

/**
 * Channel options of every coordinator client: grpc-js waits 1 s, growing
 * to 120 s, before it connects again to an address that refused it, and
 * fails calls at once meanwhile. A coordinator that was down (killed, and
 * started again as a standby) may lead a few seconds later; its clients
 * must find it then, not after a backoff grown while it was down.
 */
export const LEADER_CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
} as const;

/**
 * How long a call waits for the connection to an address to be set up
 * before it counts that address as silent and tries the next: as long as
 * the keepalive lets a ping go unanswered (`DEFAULT_KEEPALIVE.timeoutMs`).
 * A coordinator process that is paused (SIGSTOP) still has its kernel
 * accept TCP connections but never answers the HTTP/2 handshake: without
 * this bound, grpc-js would hold the call until its deadline.
 */
export const CONNECT_TIMEOUT_MS = 4000;

/**
 * Waits while `client`'s channel is connecting, at most `timeoutMs`.
 * Resolves true once it is connected, or when connecting failed outright
 * (the call then fails at once, as unreachable); false when the channel was
 * still connecting after `timeoutMs`: the address accepts connections but
 * does not answer.
 */
export function settleConnection(client: grpc.Client, timeoutMs: number): Promise<boolean> {
  const channel = client.getChannel();
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state !== grpc.connectivityState.IDLE && state !== grpc.connectivityState.CONNECTING) {
        resolve(true);
        return;
      }
      if (Date.now() >= deadline) {
        resolve(false);
        return;
      }
      channel.watchConnectivityState(state, deadline, () => check());
    };
    check();
  });
}

/**
 * The error of a call not sent because the address did not answer the
 * connection within `timeoutMs`: UNAVAILABLE without a coordinator's
 * reason, as a transport failure.
 */
export function silentAddressError(address: string, timeoutMs: number): grpc.ServiceError {
  const details = `${address} accepted the connection but did not answer within ${timeoutMs} ms`;
  return Object.assign(new Error(`${grpc.status.UNAVAILABLE} UNAVAILABLE: ${details}`), {
    code: grpc.status.UNAVAILABLE,
    details,
    metadata: new grpc.Metadata(),
  });
}

/**
 * How long an address whose connection failed without a refusal (a
 * keepalive ping unanswered, a connection not answered within
 * `CONNECT_TIMEOUT_MS`, the process gone) is not followed when a standby
 * names it as the leader: the client asks the other addresses instead. A
 * paused leader is noticed 4 to 5 s after it stopped (see
 * `DEFAULT_KEEPALIVE`), about when its 5 s election lease runs out: the
 * standbys name it until then, and the new leader soon after.
 */
export const SILENT_ADDRESS_AVOID_MS = 5000;

/** Routes (jobs) whose address is remembered; the least recently moved are forgotten past it. */
export const MAX_ROUTES = 10_000;

/** Whether a call may be repeated after an unknown outcome. */
export type Repeatable = 'idempotent' | 'once';

/**
 * The one reading of coordinator addresses, for the clients, the worker
 * and the CLI: an address, a comma-separated list, or an array of either,
 * as a list of `host:port` strings without blanks or repeats. Refuses with
 * MALFORMED, naming `option`, when none is left.
 */
export function parseAddresses(addresses: string | readonly string[] | undefined, option = 'coordinator'): string[] {
  const given: readonly unknown[] =
    typeof addresses === 'string' ? [addresses] : Array.isArray(addresses) ? addresses : [];
  const list = given
    .flatMap((a) => (typeof a === 'string' ? a.split(',') : []))
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (list.length === 0) {
    throw new CkptError('MALFORMED', `${option}: at least one coordinator address (host:port) is required`);
  }
  return [...new Set(list)];
}

/** One grpc-js client per known address, and the one in use. */
export class LeaderRouter<C extends grpc.Client> {
  readonly #create: (address: string) => C;
  readonly #retry: Required<LeaderRetryOptions>;
  readonly #addresses: string[];
  readonly #given: readonly string[];
  readonly #followUnlisted: boolean;
  readonly #clients = new Map<string, C>();
  /** Addresses gone silent, and until when they are not followed. */
  readonly #silent = new Map<string, number>();
  /** The address index of each route (job) that was moved; others go by `#index`. */
  readonly #routes = new Map<string, number>();
  #index = 0;

  /**
   * `create` opens a client for an address; clients are created on first
   * use. `followUnlisted`: whether leaders not among `addresses` may be
   * followed (see the module comment).
   */
  constructor(
    addresses: readonly string[],
    create: (address: string) => C,
    retry: LeaderRetryOptions = {},
    followUnlisted = false,
  ) {
    this.#addresses = [...addresses];
    this.#given = [...addresses];
    this.#create = create;
    this.#retry = { ...DEFAULT_LEADER_RETRY, ...definedOnly(retry) };
    this.#followUnlisted = followUnlisted;
  }

  /** Every address known: the ones given, then leaders named by standbys. */
  get addresses(): readonly string[] {
    return this.#addresses;
  }

  /** The address calls that name no job go to now. */
  get address(): string {
    return this.addressOf();
  }

  /** The client of `address`. */
  get client(): C {
    return this.clientOf();
  }

  /** The address calls of `route` (a job id; none: the default route) go to now. */
  addressOf(route?: string): string {
    return this.#addresses[this.#indexOf(route)] ?? '';
  }

  /** The client of `addressOf(route)`. */
  clientOf(route?: string): C {
    const address = this.addressOf(route);
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = this.#create(address);
      this.#clients.set(address, client);
    }
    return client;
  }

  #indexOf(route: string | undefined): number {
    return (route === undefined ? undefined : this.#routes.get(route)) ?? this.#index;
  }

  /** Moves `route` (and the default route) to address `index`. */
  #move(route: string | undefined, index: number): void {
    this.#index = index;
    if (route === undefined) return;
    this.#routes.delete(route);
    this.#routes.set(route, index);
    if (this.#routes.size > MAX_ROUTES) {
      const oldest = this.#routes.keys().next().value;
      if (oldest !== undefined) this.#routes.delete(oldest);
    }
  }

  /**
   * After a failed call: moves to the leader a NOT_LEADER refusal names, or
   * to the next address when none is named, the coordinator is stopping or
   * unreachable. Other failures change nothing. Returns, without moving,
   * the error to fail with when the named leader may not be followed.
   *
   * A transport failure marks the address silent for
   * `SILENT_ADDRESS_AVOID_MS`: meanwhile a standby that names it as the
   * leader is not followed, and the client moves to the next address
   * instead (see `silentAddresses`). `from`: the address the failed call
   * went to, by default the current one of `route`. `route`: the job the
   * call named; only its route and the default move.
   */
  follow(err: unknown, from?: string, route?: string): CkptError | undefined {
    const origin = from ?? this.addressOf(route);
    const info = errorInfo(err);
    if (info === undefined || info.code !== grpc.status.UNAVAILABLE) return undefined;
    if (info.reason === undefined) {
      this.#silent.set(origin, Date.now() + SILENT_ADDRESS_AVOID_MS);
      // Another call that failed on the same connection moved the client on already.
      if (origin !== this.addressOf(route)) return undefined;
    } else {
      // It answered: not silent.
      this.#silent.delete(origin);
    }
    const avoid = this.silentAddresses;
    if (info.reason === 'NOT_LEADER' && info.leader !== undefined && avoid.includes(info.leader)) {
      this.#move(route, this.#next(this.#indexOf(route), avoid));
      return undefined;
    }
    if (info.reason === 'NOT_LEADER' && info.leader !== undefined) {
      if (!this.#given.includes(info.leader) && !this.#followUnlisted) return this.#unlisted(info.leader, err, route);
      if (!this.#addresses.includes(info.leader)) this.#addresses.push(info.leader);
      this.#move(route, this.#addresses.indexOf(info.leader));
      return undefined;
    }
    // TAKING_OVER is not here: that coordinator leads already, and serves once it has loaded its jobs.
    if (info.reason === undefined || info.reason === 'NOT_LEADER' || info.reason === 'SHUTTING_DOWN') {
      this.#move(route, this.#next(this.#indexOf(route), avoid));
    }
    return undefined;
  }

  /** Addresses that went silent lately (see `follow`), not followed when named. */
  get silentAddresses(): string[] {
    const now = Date.now();
    for (const [address, untilMs] of this.#silent) if (now >= untilMs) this.#silent.delete(address);
    return [...this.#silent.keys()];
  }

  /** The index of the address after `from`, past those in `avoid` while there are others. */
  #next(from: number, avoid: readonly string[]): number {
    const n = this.#addresses.length;
    for (let step = 1; step < n; step += 1) {
      const index = (from + step) % n;
      if (!avoid.includes(this.#addresses[index] ?? '')) return index;
    }
    return (from + 1) % n;
  }

  #unlisted(leader: string, cause: unknown, route: string | undefined): CkptError {
    return new CkptError(
      'NOT_LEADER',
      `${this.addressOf(route)} names ${leader} as the leader, which is not among the coordinator addresses given ` +
        `(${this.#given.join(',')}); the client goes only to those, unless TLS with a server name ` +
        `(--tls-server-name, tls.serverName) checks that ${leader} belongs to the cluster: ` +
        `add ${leader} to the addresses or use TLS with a server name`,
      { leader, cause },
    );
  }

  /**
   * Runs `attempt` against the current client, following the leader and
   * retrying with backoff as the module comment says, until it succeeds,
   * fails for good, or the call's deadline or retry time is up. Each
   * attempt gets the time left of the call's deadline. `route`: the job
   * the call names, whose leader it goes to (see the module comment).
   */
  async call<T>(
    attempt: (client: C, options: CallOptions) => Promise<T>,
    repeatable: Repeatable,
    options: CallOptions = {},
    route?: string,
  ): Promise<T> {
    const startedAt = Date.now();
    const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const retryUntil = startedAt + this.#retry.timeoutMs;
    const until = deadlineMs > 0 ? Math.min(startedAt + deadlineMs, retryUntil) : retryUntil;
    let from = this.addressOf(route);
    for (let n = 0; ; n += 1) {
      const left = deadlineMs > 0 ? Math.max(1, startedAt + deadlineMs - Date.now()) : 0;
      try {
        const client = this.clientOf(route);
        from = this.addressOf(route);
        const waitMs = Math.min(CONNECT_TIMEOUT_MS, left > 0 ? left : CONNECT_TIMEOUT_MS);
        // A call not sent can go elsewhere, whether it may be repeated or not: hence `unsent`.
        if (!(await settleConnection(client, waitMs))) throw unsent(silentAddressError(from, waitMs));
        const rest = deadlineMs > 0 ? Math.max(1, startedAt + deadlineMs - Date.now()) : 0;
        return await attempt(client, { ...options, deadlineMs: rest });
      } catch (caught) {
        const notSent = caught instanceof Unsent;
        const err = notSent ? caught.error : caught;
        const delay = this.#delayMs(n);
        const giveUp =
          !(notSent || retriable(err, repeatable)) || options.signal?.aborted === true || Date.now() + delay >= until;
        // Followed also when the call is not repeated: the next call of the route goes where this one should have.
        const refused = this.follow(err, from, route);
        if (giveUp) throw err;
        if (refused !== undefined) throw refused;
        await sleep(delay, options.signal);
      }
    }
  }

  /** Closes every client. */
  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #delayMs(attempt: number): number {
    const { initialDelayMs, maxDelayMs } = this.#retry;
    return backoffDelayMs({ initialDelayMs, maxDelayMs, multiplier: 2, jitter: 0.2 }, attempt);
  }
}

/** True when a call that failed with `err` may be sent again (see the module comment). */
export function retriable(err: unknown, repeatable: Repeatable): boolean {
  const info = errorInfo(err);
  if (info === undefined) return false;
  const unavailable = info.code === grpc.status.UNAVAILABLE;
  if (
    unavailable &&
    (info.reason === 'NOT_LEADER' || info.reason === 'SHUTTING_DOWN' || info.reason === 'TAKING_OVER')
  ) {
    return true;
  }
  if (repeatable !== 'idempotent') return false;
  return info.retryable || (unavailable && (info.reason === undefined || info.reason === 'UNAVAILABLE'));
}

/** A call that was never sent. */
class Unsent extends Error {
  constructor(readonly error: grpc.ServiceError) {
    super(error.message);
  }
}

function unsent(error: grpc.ServiceError): Unsent {
  return new Unsent(error);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
