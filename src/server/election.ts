/**
 * The etcd mechanics of the leader election, on the public API of the etcd3
 * client: a candidacy is a lease (kept alive by the client) and a key
 * `<prefix>election/<name>/<lease id in hex>` put with that lease in a
 * transaction, whose value is the candidate's advertised address. The
 * candidacy with the lowest create revision leads; every other waits, with a
 * watch, for the deletion of the key created just before its own, then looks
 * again. Keys go when their lease is revoked or expires, so a candidate that
 * dies hands over within a TTL, and one that stops hands over at once.
 *
 * Every error of etcd here is a `CkptError` from the store's translation;
 * retries follow `backoffDelayMs`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3, IOptions, Lease, Watcher } from 'etcd3';
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import { callEtcd, translateEtcdError } from '../store/index.js';

/** Name of the election under the etcd prefix when the jobs form one group. */
const ELECTION_NAME = 'leader';
/** How long cancelling a watch waits for etcd to confirm it. */
const WATCH_CANCEL_MS = 1000;
/** The pause before etcd3 opens a broken election watch again. */
const WATCH_BACKOFF: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0 };
/** The pause before an etcd call of the election is tried again, and between candidacies. */
export const ELECTION_RETRY: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.2 };

/** What etcd3 takes as `faultHandling.watchBackoff`. */
export type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * The backoff of the election client's watches: from 100 ms, doubling up to
 * 1 s. etcd3's default grows to 30 s within a second of etcd being
 * unreachable, so that after a short outage the election went unobserved for
 * up to 30 s; and its retry timer outlives `close()`, which kept a stopped
 * coordinator's process alive as long.
 */
export function electionWatchBackoff(attempt = 0): WatchBackoff {
  return { duration: backoffDelayMs(WATCH_BACKOFF, attempt), next: () => electionWatchBackoff(attempt + 1) };
}

/** Where the candidacy keys of every election under `prefix` live. */
export function electionsKeyPrefix(prefix: string): string {
  return `${prefix}election/`;
}

/**
 * Where the candidacy keys of an election under `prefix` live: the one
 * election of a single job group (`leader`), or of job group `group`.
 */
export function candidacyKeyPrefix(prefix: string, election: string = ELECTION_NAME): string {
  return `${electionsKeyPrefix(prefix)}${election}/`;
}

/** The election of job group `group` of `groups`: `leader` when there is one group, else `group-<g>`. */
export function groupElectionName(group: number, groups: number): string {
  return groups === 1 ? ELECTION_NAME : `group-${group}`;
}

/**
 * An etcd3 watcher, cancelled at most once: a second cancel would wait for
 * an end that already came. Watchers are made with `WatchBuilder.watcher()`
 * rather than `create()`, which resolves only once etcd answers and so
 * leaves no way to cancel a watch asked for while etcd is unreachable; a
 * watch never cancelled is retried forever, even after the client closed.
 */
export class ElectionWatch {
  readonly watcher: Watcher;
  readonly #log: Logger;
  #cancelled: Promise<void> | undefined;

  constructor(watcher: Watcher, log: Logger) {
    this.watcher = watcher;
    this.#log = log;
  }

  /** Cancels the watch; waits at most `WATCH_CANCEL_MS` for etcd to confirm. Never rejects. */
  cancel(): Promise<void> {
    this.#cancelled ??= Promise.race([
      this.watcher.cancel().catch((err: unknown) => this.#log.debug({ err }, 'election watch did not close')),
      delay(WATCH_CANCEL_MS, undefined, { ref: false }),
    ]);
    return this.#cancelled;
  }
}

/** Options of a `Candidacy`. */
export interface CandidacyOptions {
  /** The election's etcd client; never closed here. */
  client: Etcd3;
  /** Where the candidacy keys live: `candidacyKeyPrefix(prefix)`. */
  keyPrefix: string;
  /** The lease TTL in whole seconds, at least 1. */
  ttlSeconds: number;
  /** The key's value: the candidate's advertised address. */
  value: string;
  logger: Logger;
  /** The lease is lost: etcd found it expired or revoked, or it went unrenewed too long. Not after `end()`. */
  onLost(err: CkptError): void;
}

/** The key created just before a candidacy's own, and where to watch it from. */
interface Predecessor {
  key: string;
  /** The revision after the read that found it: a watch from there misses no deletion. */
  watchFrom: string;
}

/** How waiting for a predecessor's deletion ended. */
type WaitOutcome = 'deleted' | 'reconnected' | 'failed' | 'ended';

/** One lease and its key, from `elect()` until `end()`; a new candidacy gets a new lease. */
export class Candidacy {
  readonly #o: CandidacyOptions;
  readonly #log: Logger;
  readonly #lease: Lease;
  readonly #ended = new AbortController();
  #key = '';
  #createRevision = '';
  #watch: ElectionWatch | undefined;

  /** Asks etcd for the lease at once; see `CandidacyOptions`. */
  constructor(options: CandidacyOptions) {
    this.#o = options;
    this.#log = options.logger;
    this.#lease = options.client.lease(options.ttlSeconds);
    // Without a listener, a lost lease would crash the process.
    this.#lease.on('lost', (err) => this.#lost(err));
  }

  /** The full etcd key, once `elect()` has put it; '' before. */
  get key(): string {
    return this.#key;
  }

  /** Decimal create revision of `key`, once put; '' before. */
  get createRevision(): string {
    return this.#createRevision;
  }

  /**
   * Puts the key and waits until it is the oldest in the election. Resolves
   * with when the read that found it oldest was sent, a confirmation that
   * the key existed then. Rejects with a `CkptError` once the candidacy is
   * over: the lease was not granted, the key is gone, etcd failed in a way
   * no retry can help, or `end()` was called. Calls that etcd may answer
   * later are retried meanwhile, the lease kept alive.
   */
  async elect(): Promise<number> {
    const leaseId = await callEtcd({ operation: 'grant the election lease' }, () => this.#lease.grant());
    this.#throwIfEnded();
    this.#key = `${this.#o.keyPrefix}${BigInt(leaseId).toString(16)}`;
    this.#createRevision = await this.#retrying('put the candidacy key', () => this.#put(leaseId));
    for (let failedWatches = 0; ;) {
      const sentAtMs = Date.now();
      const before = await this.#retrying('find the candidacy before this one', () => this.#predecessor());
      if (before === undefined) return sentAtMs;
      const outcome = await this.#waitForDeletion(before);
      this.#throwIfEnded();
      if (outcome === 'failed') await this.#pause(failedWatches++);
      else failedWatches = 0;
    }
  }

  /** Whether the key still exists with its create revision, so that the lease is alive. */
  async confirm(): Promise<boolean> {
    const response = await callEtcd({ operation: 'confirm the candidacy key' }, () =>
      this.#o.client.get(this.#key).exec(),
    );
    return response.kvs[0]?.create_revision === this.#createRevision;
  }

  /**
   * Ends the candidacy: stops waiting, cancels its watch, and revokes the
   * lease (its key goes at once and the next candidate leads) or only stops
   * renewing it (the key stays until the TTL runs out, as when the process
   * dies). Never rejects; a failed revoke is logged and the lease expires.
   */
  async end(lease: 'revoke' | 'release'): Promise<void> {
    if (this.#ended.signal.aborted) return;
    this.#ended.abort();
    const cancelled = this.#watch?.cancel();
    if (lease === 'release') {
      this.#lease.release();
      await cancelled;
      return;
    }
    const revoked = this.#lease.revoke().catch((err: unknown) => {
      const error = translateEtcdError(err, { operation: 'revoke the election lease' });
      this.#log.warn({ err: error }, 'the election lease was not revoked; it expires after its TTL');
    });
    await Promise.all([cancelled, revoked]);
  }

  /**
   * Creates the key with the lease unless it exists: a retried put whose
   * first attempt landed finds the key of its own lease.
   */
  async #put(leaseId: string): Promise<string> {
    const { client } = this.#o;
    const result = await client
      .if(this.#key, 'Create', '==', 0)
      .then(client.put(this.#key).value(this.#o.value).lease(leaseId))
      .else(client.get(this.#key))
      .commit();
    if (result.succeeded) return result.header.revision;
    const existing = result.responses[0]?.response_range.kvs[0];
    if (existing?.lease !== leaseId) {
      throw new CkptError('INTERNAL', `election: the candidacy key ${this.#key} belongs to another lease`);
    }
    return existing.create_revision;
  }

  /** The newest key created before this one, read together with a check that this one still exists. */
  async #predecessor(): Promise<Predecessor | undefined> {
    const { client } = this.#o;
    const older = client
      .getAll()
      .prefix(this.#o.keyPrefix)
      .maxCreateRevision(Number(this.#createRevision) - 1)
      .sort('Create', 'Descend')
      .limit(1);
    const result = await client.if(this.#key, 'Create', '==', this.#createRevision).then(older).commit();
    if (!result.succeeded) {
      throw new CkptError('UNAVAILABLE', `election: the candidacy key ${this.#key} is gone`);
    }
    const kv = result.responses[0]?.response_range.kvs[0];
    if (kv === undefined) return undefined;
    return { key: kv.key.toString(), watchFrom: String(Number(result.header.revision) + 1) };
  }

  /**
   * Waits until the predecessor's key is deleted, or the watch came back
   * after a broken stream (either lease may have expired meanwhile), failed,
   * or the candidacy ended. Each way, the caller looks again.
   */
  async #waitForDeletion(before: Predecessor): Promise<WaitOutcome> {
    // Checked with the watch opened in the same turn: one opened after `end()` would never be cancelled.
    this.#throwIfEnded();
    const watcher = this.#o.client.watch().key(before.key).startRevision(before.watchFrom).only('delete').watcher();
    const watch = new ElectionWatch(watcher, this.#log);
    this.#watch = watch;
    let onEnd: (() => void) | undefined;
    try {
      return await new Promise<WaitOutcome>((resolve) => {
        let broken = false;
        watcher.on('delete', () => resolve('deleted'));
        watcher.on('disconnected', () => (broken = true));
        watcher.on('connected', () => broken && resolve('reconnected'));
        watcher.on('error', (err) => {
          const error = translateEtcdError(err, { operation: 'watch the candidacy before this one' });
          this.#log.debug({ err: error }, 'election watch failed; looking again');
          resolve('failed');
        });
        onEnd = () => resolve('ended');
        this.#ended.signal.addEventListener('abort', onEnd, { once: true });
      });
    } finally {
      if (onEnd !== undefined) this.#ended.signal.removeEventListener('abort', onEnd);
      this.#watch = undefined;
      void watch.cancel();
    }
  }

  /** Runs `call` until it succeeds, retrying while the failure is retryable and the candidacy lasts. */
  async #retrying<T>(operation: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.#throwIfEnded();
      try {
        return await callEtcd({ operation }, call);
      } catch (err) {
        const error = CkptError.from(err);
        if (!error.retryable) throw error;
        this.#log.debug({ err: error }, 'election call failed; trying again');
        await this.#pause(attempt);
      }
    }
  }

  /** Waits out retry number `attempt`, or until the candidacy ends. */
  async #pause(attempt: number): Promise<void> {
    const options = { signal: this.#ended.signal };
    await delay(backoffDelayMs(ELECTION_RETRY, attempt), undefined, options).catch(() => undefined);
    this.#throwIfEnded();
  }

  #throwIfEnded(): void {
    if (this.#ended.signal.aborted) throw new CkptError('SHUTTING_DOWN', 'election: the candidacy has ended');
  }

  #lost(err: Error): void {
    if (this.#ended.signal.aborted) return;
    this.#o.onLost(translateEtcdError(err, { operation: 'keep the election lease alive' }));
  }
}
