/**
 * The leader election among coordinators that share one etcd prefix: an
 * etcd election (etcd3's `Election`) on a lease, under
 * `<prefix>election/leader/`, whose value is each candidate's advertised
 * gRPC address. The oldest candidacy leads; its term is the create revision
 * of its election key, which grows with every change of leader.
 *
 * A leader steps down at once when its lease is lost, when its election key
 * is gone, when etcd has not confirmed the key for a whole lease TTL, or
 * when the owner reports a fenced write refused (`stepDown`); then it
 * campaigns again. The owner hears `onElected` and `onDeposed`, which
 * alternate, starting with `onElected`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Campaign, Election, ElectionObserver, Etcd3, IOptions, Lease, Watcher } from 'etcd3';
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import type { Logger } from '../log/index.js';

/** Name of the election under the etcd prefix. */
export const ELECTION_NAME = 'leader';
/** Pause before campaigning again after a failed campaign or a lost leadership. */
export const DEFAULT_CAMPAIGN_RETRY_MS = 500;
/** How long `stop()` waits for etcd to confirm that the election's watches are cancelled. */
const WATCH_CANCEL_MS = 1000;
/** The pause before etcd3 opens a broken election watch again. */
const WATCH_BACKOFF: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0 };

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

/** A leadership won: the election key, its create revision, and that as a number. */
export interface LeaderTerm {
  /** The full etcd key of the leader's candidacy. */
  key: string;
  /** Decimal create revision of `key`. */
  createRevision: string;
  /** `createRevision` as a number: sent with every control message. */
  term: number;
}

/** Where a `Leadership` is: `idle` until `start()`, `stopped` after `stop()`. */
export type LeadershipState = 'idle' | 'campaigning' | 'leading' | 'stopped';

/** Options of a `Leadership`. */
export interface LeadershipOptions {
  /**
   * The etcd client, with a deadline on unary calls; the leadership never
   * closes it. Best its own: the client stops calling etcd for a while
   * after a few failed calls, and other traffic should not make the
   * leader step down.
   */
  client: Etcd3;
  /** The etcd key prefix, ending with '/'. */
  prefix: string;
  /** Lease TTL; sent to etcd in whole seconds, rounded up. */
  leaseTtlMs: number;
  logger: Logger;
  /** This candidate won; `term` fences its writes. */
  onElected(term: LeaderTerm): void;
  /** This candidate lost the leadership it had won, for the reason given. */
  onDeposed(why: string): void;
  /** @default DEFAULT_CAMPAIGN_RETRY_MS */
  retryDelayMs?: number;
}

/** One candidate's part in the election, from `start()` to `stop()`. */
export class Leadership {
  readonly #o: LeadershipOptions;
  readonly #log: Logger;
  readonly #election: Election;
  readonly #retryDelayMs: number;
  readonly #timers = new Set<NodeJS.Timeout>();
  #state: LeadershipState = 'idle';
  #advertise = '';
  #campaign: Campaign | undefined;
  #term: LeaderTerm | undefined;
  #observer: ElectionObserver | undefined;
  #observed: string | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #confirmedAtMs = 0;
  #checking = false;
  #staleTicks = 0;

  /** See `LeadershipOptions`; nothing happens before `start()`. */
  constructor(options: LeadershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'leadership' });
    this.#retryDelayMs = options.retryDelayMs ?? DEFAULT_CAMPAIGN_RETRY_MS;
    const ttlSeconds = Math.max(1, Math.ceil(options.leaseTtlMs / 1000));
    this.#election = options.client.namespace(options.prefix).election(ELECTION_NAME, ttlSeconds);
  }

  /** `idle`, `campaigning`, `leading` or `stopped`. */
  get state(): LeadershipState {
    return this.#state;
  }

  /** The term while leading. */
  get term(): LeaderTerm | undefined {
    return this.#term;
  }

  /**
   * The leader's advertised address as far as known: this candidate's own
   * while it leads, else the value of the oldest candidacy in etcd (never
   * this candidate's own, which may be a stale key of a lost lease).
   */
  get leader(): string | undefined {
    if (this.#state === 'leading') return this.#advertise;
    return this.#observed === this.#advertise ? undefined : this.#observed;
  }

  /**
   * Starts campaigning with `advertise` (the gRPC address other
   * coordinators and clients reach this one at) and observing who leads.
   */
  start(advertise: string): void {
    if (this.#state !== 'idle') throw new Error(`leadership cannot start when ${this.#state}`);
    this.#advertise = advertise;
    this.#state = 'campaigning';
    this.#campaignOnce();
    this.#observe();
  }

  /** Gives up a leadership that the owner found lost (a fenced write was refused), and campaigns again. */
  stepDown(why: string): void {
    this.#depose(why);
  }

  /**
   * Stops campaigning and observing. With `resign` the lease is revoked, so
   * that a standby takes over at once; without, it is only no longer
   * renewed and expires after its TTL, as when the process dies. Does not
   * call `onDeposed`.
   */
  async stop(resign: boolean): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#term = undefined;
    this.#stopWatchdog();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const observer = this.#observer;
    this.#observer = undefined;
    const observed = observer?.cancel().catch((err: unknown) => this.#log.debug({ err }, 'observer did not close'));
    const campaign = this.#campaign;
    this.#campaign = undefined;
    if (campaign !== undefined && resign) {
      await campaign.resign().catch((err: unknown) => this.#log.warn({ err }, 'resigning failed; the lease expires'));
    } else if (campaign !== undefined) {
      releaseLease(campaign);
    }
    const cancelled = Promise.all([observed, cancelWatches(this.#election)]);
    await Promise.race([cancelled, delay(WATCH_CANCEL_MS, undefined, { ref: false })]);
  }

  // --- campaign -------------------------------------------------------------

  #campaignOnce(): void {
    if (this.#state !== 'campaigning') return;
    const campaign = this.#election.campaign(this.#advertise);
    this.#campaign = campaign;
    // Without an error listener, a lost lease would crash the process.
    campaign.on('error', (err: Error) => this.#campaignFailed(campaign, err));
    campaign.on('elected', () => void this.#elected(campaign));
  }

  async #elected(campaign: Campaign): Promise<void> {
    if (campaign !== this.#campaign || this.#state !== 'campaigning') return;
    let term: LeaderTerm;
    const readAtMs = Date.now();
    try {
      term = await this.#readTerm(campaign);
    } catch (err) {
      this.#campaignFailed(campaign, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (campaign !== this.#campaign || this.#state !== 'campaigning') return;
    this.#state = 'leading';
    this.#term = term;
    this.#confirmedAtMs = readAtMs;
    this.#staleTicks = 0;
    this.#startWatchdog(term);
    this.#log.info({ term: term.term, address: this.#advertise }, 'elected leader');
    this.#o.onElected(term);
  }

  async #readTerm(campaign: Campaign): Promise<LeaderTerm> {
    const key = await campaign.getCampaignKey();
    const response = await this.#o.client.get(key).exec();
    const createRevision = response.kvs[0]?.create_revision;
    if (createRevision === undefined) throw new Error(`election key ${key} vanished when it won`);
    return { key, createRevision, term: Number(createRevision) };
  }

  #campaignFailed(campaign: Campaign, err: Error): void {
    if (campaign !== this.#campaign) return;
    if (this.#state === 'leading') {
      this.#depose(`the election lease was lost: ${err.message}`);
      return;
    }
    if (this.#state !== 'campaigning') return;
    this.#campaign = undefined;
    this.#log.warn({ err }, 'campaign failed; campaigning again');
    campaign.resign().catch(() => undefined);
    this.#later(() => this.#campaignOnce());
  }

  #depose(why: string): void {
    if (this.#state !== 'leading') return;
    this.#state = 'campaigning';
    this.#term = undefined;
    this.#stopWatchdog();
    const campaign = this.#campaign;
    this.#campaign = undefined;
    // Revoking removes the key at once if etcd is reachable; else the lease expires.
    campaign?.resign().catch(() => undefined);
    this.#log.warn({ why }, 'leadership lost');
    this.#o.onDeposed(why);
    this.#later(() => this.#campaignOnce());
  }

  // --- the leader's own check of its key ------------------------------------

  #startWatchdog(term: LeaderTerm): void {
    const intervalMs = Math.max(50, Math.floor(this.#o.leaseTtlMs / 4));
    this.#watchdog = setInterval(() => void this.#checkKey(term), intervalMs);
  }

  #stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /**
   * Confirms that the election key still exists with the term's create
   * revision: while it does, the lease is alive. When no read has confirmed
   * it for a whole TTL (etcd unreachable or too slow), the lease may have
   * expired in etcd, so the leader steps down.
   */
  async #checkKey(term: LeaderTerm): Promise<void> {
    if (this.#term !== term) return;
    if (this.#checking) {
      // A read still open with the key unconfirmed for a TTL: etcd does not
      // answer. Judged at the second such tick, since after the process
      // itself stalled, timers run before the reply etcd sent in time.
      if (!this.#stale()) this.#staleTicks = 0;
      else if (++this.#staleTicks >= 2) this.#unconfirmed();
      return;
    }
    this.#checking = true;
    const sentAtMs = Date.now();
    try {
      const response = await this.#o.client.get(term.key).exec();
      if (this.#term !== term) return;
      if (response.kvs[0]?.create_revision !== term.createRevision) {
        this.#depose('the election key is gone: the lease expired or was revoked');
        return;
      }
      this.#confirmedAtMs = sentAtMs;
      this.#staleTicks = 0;
    } catch (err) {
      this.#log.debug({ err }, 'election key not confirmed');
      if (this.#term === term && this.#stale()) this.#unconfirmed();
    } finally {
      this.#checking = false;
    }
  }

  #stale(): boolean {
    return Date.now() - this.#confirmedAtMs > this.#o.leaseTtlMs;
  }

  #unconfirmed(): void {
    this.#depose(`etcd has not confirmed the election key for ${this.#o.leaseTtlMs} ms`);
  }

  // --- who leads ------------------------------------------------------------

  #observe(): void {
    if (this.#state === 'stopped') return;
    this.#election.observe().then(
      (observer) => {
        if (this.#state === 'stopped') {
          void observer.cancel().catch(() => undefined);
          return;
        }
        this.#observer = observer;
        this.#observed = observer.leader();
        observer.on('change', (leader: string | undefined) => {
          this.#observed = leader;
        });
        observer.on('error', (err: Error) => {
          if (this.#observer !== observer) return;
          this.#log.debug({ err }, 'election observer failed; observing again');
          this.#observer = undefined;
          this.#observed = undefined;
          this.#later(() => this.#observe());
        });
      },
      (err: unknown) => {
        this.#log.debug({ err }, 'election not observed; trying again');
        this.#later(() => this.#observe());
      },
    );
  }

  #later(run: () => void): void {
    if (this.#state === 'stopped') return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, this.#retryDelayMs);
    this.#timers.add(timer);
  }
}

/**
 * Cancels every watch of the election. etcd3's `Campaign` keeps watching
 * the key of the candidate before it after `resign()`, until that key goes;
 * once the client is closed, a watch left open would be retried forever and
 * keep the process alive. etcd3 offers no way to reach those watches but
 * through the election's namespace.
 */
async function cancelWatches(election: Election): Promise<void> {
  type WithWatches = { namespace?: { watchManager?: { watchers?: Watcher[] } } };
  const watchers = (election as unknown as WithWatches).namespace?.watchManager?.watchers ?? [];
  await Promise.allSettled([...watchers].map((watcher) => watcher.cancel()));
}

/**
 * Stops renewing a campaign's lease without revoking it, as a process that
 * dies would: its key stays until the TTL runs out. etcd3's `Campaign`
 * offers only `resign()`, which revokes, so this reaches its lease.
 */
function releaseLease(campaign: Campaign): void {
  const lease = (campaign as unknown as { lease?: Lease }).lease;
  if (typeof lease?.release === 'function') lease.release();
}
