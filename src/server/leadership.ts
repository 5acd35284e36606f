/**
 * One coordinator's part in the leader election among coordinators that
 * share one etcd prefix, as a state machine over the etcd mechanics of
 * `election.ts`: `idle`, then `campaigning` (a candidacy waits its turn)
 * and `leading` in turn, until `stopped`. The oldest candidacy leads; its
 * term is the create revision of its key, which grows with every change of
 * leader. `LeaderObserver` tells a standby who leads.
 *
 * A leader steps down at once when its lease is lost, when its key is gone,
 * when etcd has not confirmed the key for a whole lease TTL, or when the
 * owner reports a fenced write refused (`stepDown`); it revokes its lease,
 * so that the next candidate leads, and campaigns again with a new one. The
 * owner hears `onElected` and `onDeposed`, which alternate, starting with
 * `onElected`.
 */
import type { Etcd3 } from 'etcd3';
import { backoffDelayMs } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import { Candidacy, candidacyKeyPrefix, ELECTION_RETRY } from './election.js';
import { LeaderObserver, type LeaderRecord } from './leader-observer.js';
import { LeaderProbe } from './leader-probe.js';
import { callEtcd } from '../store/index.js';

/** A leadership won: the election key, its create revision, and that as a number. */
export interface LeaderTerm {
  /** The full etcd key of the leader's candidacy. */
  key: string;
  /** Decimal create revision of `key`. */
  createRevision: string;
  /** `createRevision` as a number: sent with every control message. */
  term: number;
}

/** Candidacy keys read when looking for an earlier process's: far more than coordinators ever run. */
const MAX_CANDIDACIES_READ = 1000;

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
  /**
   * The election's name under `<prefix>election/`: `leader` for the one
   * election of a single job group, `group-<g>` for job group g.
   * @default 'leader'
   */
  election?: string;
  /** Lease TTL; sent to etcd in whole seconds, rounded up. */
  leaseTtlMs: number;
  /**
   * While not leading, how often the leader's address is checked for a
   * process that listens (`LeaderProbe`); 0 turns the check off, so that a
   * dead leader is replaced only when its lease expires. Default 0.
   */
  probeIntervalMs?: number;
  logger: Logger;
  /** This candidate won; `term` fences its writes. */
  onElected(term: LeaderTerm): void;
  /** This candidate lost the leadership it had won, for the reason given. */
  onDeposed(why: string): void;
}

/** One candidate's part in the election, from `start()` to `stop()`. */
export class Leadership {
  readonly #o: LeadershipOptions;
  readonly #log: Logger;
  readonly #keyPrefix: string;
  readonly #observer: LeaderObserver;
  readonly #probe: LeaderProbe | undefined;
  readonly #timers = new Set<NodeJS.Timeout>();
  #state: LeadershipState = 'idle';
  #advertise = '';
  #candidacy: Candidacy | undefined;
  #failures = 0;
  #term: LeaderTerm | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #confirmedAtMs = 0;
  #checking = false;
  #staleTicks = 0;

  /** See `LeadershipOptions`; nothing happens before `start()`. */
  constructor(options: LeadershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'leadership' });
    this.#keyPrefix = candidacyKeyPrefix(options.prefix, options.election);
    this.#observer = new LeaderObserver({ client: options.client, keyPrefix: this.#keyPrefix, logger: this.#log });
    const probeIntervalMs = options.probeIntervalMs ?? 0;
    this.#probe =
      probeIntervalMs > 0
        ? new LeaderProbe({
            client: options.client,
            leader: () => this.#probed(),
            intervalMs: probeIntervalMs,
            minRevokeGapMs: options.leaseTtlMs,
            logger: this.#log,
          })
        : undefined;
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
    const observed = this.#observer.leader;
    return observed === this.#advertise ? undefined : observed;
  }

  /**
   * Starts campaigning with `advertise` (the gRPC address other
   * coordinators and clients reach this one at) and observing who leads.
   */
  start(advertise: string): void {
    if (this.#state !== 'idle') throw new Error(`leadership cannot start when ${this.#state}`);
    this.#advertise = advertise;
    this.#state = 'campaigning';
    void this.#retireEarlier().finally(() => this.#campaign());
    this.#observer.start();
    this.#probe?.start();
  }

  /** Gives up a leadership that the owner found lost (a fenced write was refused), and campaigns again. */
  stepDown(why: string): void {
    this.#depose(why);
  }

  /**
   * While campaigning: gives up this candidacy's place in the line and
   * campaigns again at its back (the balance of job groups lets a
   * coordinator with fewer groups go first). Does nothing otherwise.
   */
  requeue(why: string): void {
    const candidacy = this.#candidacy;
    if (this.#state !== 'campaigning' || candidacy === undefined) return;
    this.#candidacy = undefined;
    this.#log.info({ why }, 'candidacy moved to the back of the line');
    void candidacy.end('revoke');
    this.#later(() => this.#campaign(), 0);
  }

  /**
   * Stops campaigning and observing. With `resign` the lease is revoked, so
   * that a standby takes over at once; without, it is only no longer
   * renewed and expires after its TTL, as when the process dies. Does not
   * call `onDeposed`. Leaves no timer or watch that keeps the process alive.
   */
  async stop(resign: boolean): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#term = undefined;
    this.#stopWatchdog();
    this.#probe?.stop();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const candidacy = this.#candidacy;
    this.#candidacy = undefined;
    await Promise.all([candidacy?.end(resign ? 'revoke' : 'release'), this.#observer.stop()]);
  }

  /** The leader the probe checks: the observed one while campaigning, unless it is this process's address. */
  #probed(): LeaderRecord | undefined {
    if (this.#state !== 'campaigning') return undefined;
    const leader = this.#observer.current;
    return leader?.address === this.#advertise ? undefined : leader;
  }

  /**
   * Before the first candidacy: revokes the leases of candidacy keys whose
   * value is this process's own address. No candidacy of this process
   * exists yet, so they are an earlier process's on this address, which
   * died or was killed with its lease alive (a restart under a
   * supervisor); without this, the next candidate would wait for that
   * lease's TTL. Failures are logged; the lease then expires.
   */
  async #retireEarlier(): Promise<void> {
    const { client } = this.#o;
    try {
      const found = await callEtcd({ operation: 'read the candidacies' }, () =>
        client.getAll().prefix(this.#keyPrefix).limit(MAX_CANDIDACIES_READ).exec(),
      );
      const earlier = found.kvs.filter((kv) => kv.value.toString() === this.#advertise);
      for (const kv of earlier) {
        if (this.#state === 'stopped') return;
        this.#log.warn(
          { key: kv.key.toString(), address: this.#advertise },
          'a candidacy of an earlier process on this address is left; revoking its lease',
        );
        await callEtcd({ operation: 'revoke an earlier candidacy' }, () =>
          client.leaseClient.leaseRevoke({ ID: kv.lease }),
        ).catch((err: unknown) => this.#log.debug({ err }, 'earlier candidacy not revoked; its lease expires'));
      }
    } catch (err) {
      this.#log.debug({ err }, 'earlier candidacies on this address not retired; their leases expire');
    }
  }

  // --- campaign -------------------------------------------------------------

  #campaign(): void {
    if (this.#state !== 'campaigning') return;
    const candidacy: Candidacy = new Candidacy({
      client: this.#o.client,
      keyPrefix: this.#keyPrefix,
      ttlSeconds: Math.max(1, Math.ceil(this.#o.leaseTtlMs / 1000)),
      value: this.#advertise,
      logger: this.#log,
      onLost: (err) => this.#candidacyOver(candidacy, err),
    });
    this.#candidacy = candidacy;
    candidacy.elect().then(
      (confirmedAtMs) => this.#elected(candidacy, confirmedAtMs),
      (err: unknown) => this.#candidacyOver(candidacy, CkptError.from(err)),
    );
  }

  #elected(candidacy: Candidacy, confirmedAtMs: number): void {
    if (candidacy !== this.#candidacy || this.#state !== 'campaigning') return;
    const term = {
      key: candidacy.key,
      createRevision: candidacy.createRevision,
      term: Number(candidacy.createRevision),
    };
    this.#state = 'leading';
    this.#term = term;
    this.#failures = 0;
    this.#confirmedAtMs = confirmedAtMs;
    this.#staleTicks = 0;
    this.#startWatchdog(term, candidacy);
    this.#log.info({ term: term.term, address: this.#advertise }, 'elected leader');
    this.#o.onElected(term);
  }

  /** The candidacy failed or its lease was lost: a leader steps down, a candidate tries again with a new one. */
  #candidacyOver(candidacy: Candidacy, err: CkptError): void {
    if (candidacy !== this.#candidacy) return;
    if (this.#state === 'leading') {
      this.#depose(`the election lease was lost: ${err.message}`);
      return;
    }
    if (this.#state !== 'campaigning') return;
    this.#candidacy = undefined;
    void candidacy.end('revoke');
    const level = err.retryable || err.reason === 'SHUTTING_DOWN' ? 'debug' : 'warn';
    this.#log[level]({ err }, 'candidacy failed; campaigning again');
    this.#later(() => this.#campaign(), this.#failures++);
  }

  #depose(why: string): void {
    if (this.#state !== 'leading') return;
    this.#state = 'campaigning';
    this.#term = undefined;
    this.#stopWatchdog();
    const candidacy = this.#candidacy;
    this.#candidacy = undefined;
    // Revoking removes the key at once if etcd is reachable; else the lease expires.
    void candidacy?.end('revoke');
    this.#log.warn({ why }, 'leadership lost');
    this.#o.onDeposed(why);
    this.#later(() => this.#campaign(), 0);
  }

  #later(run: () => void, attempt: number): void {
    if (this.#state === 'stopped') return;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        run();
      },
      backoffDelayMs(ELECTION_RETRY, attempt),
    );
    this.#timers.add(timer);
  }

  // --- the leader's own check of its key ------------------------------------

  #startWatchdog(term: LeaderTerm, candidacy: Candidacy): void {
    const intervalMs = Math.max(50, Math.floor(this.#o.leaseTtlMs / 4));
    this.#watchdog = setInterval(() => void this.#checkKey(term, candidacy), intervalMs);
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
  async #checkKey(term: LeaderTerm, candidacy: Candidacy): Promise<void> {
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
      const held = await candidacy.confirm();
      if (this.#term !== term) return;
      if (!held) {
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
}
