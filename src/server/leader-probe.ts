/**
 * A standby's check that the leader's process still exists, so that a dead
 * leader is replaced in well under a lease TTL. Every `intervalMs` the
 * standby opens a TCP connection to the leader's advertised address and
 * closes it. When the leader's host answers `connection refused` (no
 * process listens there: the process died) `refusalsToRevoke` times in a
 * row, over at least `(refusalsToRevoke - 1) × intervalMs`, the standby
 * revokes the lease of the leader's candidacy key, found unchanged just
 * before, and the next candidate leads at once.
 *
 * Safety does not rest on this: every commit compares the leader key, so a
 * leader revoked by mistake (its address refused connections although it
 * lived) can no longer commit and steps down; the cost of a mistake is one
 * fail-over. So the evidence is strict: only refusals count; an accepted
 * connection starts the count again and a timeout or any other failure
 * proves nothing (a paused process or a silent network still waits for
 * the TTL); and one process revokes the lease of a leader at one address
 * at most once per `minRevokeGapMs`.
 */
import { Socket } from 'node:net';
import type { Etcd3 } from 'etcd3';
import { isHostPort, splitHostPort } from '../core/host-port.js';
import type { Logger } from '../log/index.js';
import { callEtcd } from '../store/index.js';
import type { LeaderRecord } from './leader-observer.js';

/**
 * Least time a connection attempt waits: on a loaded machine the answer to
 * a connection may reach the process late, and a timeout proves nothing.
 */
const MIN_CONNECT_TIMEOUT_MS = 1000;
/** Default of `LeaderProbeOptions.refusalsToRevoke`. */
export const DEFAULT_LEADER_PROBE_REFUSALS = 3;

/** What one connection attempt to the leader's address showed. */
export type ProbeOutcome = 'accepted' | 'refused' | 'unknown';

/** Options of a `LeaderProbe`. */
export interface LeaderProbeOptions {
  /** The election's etcd client; never closed here. */
  client: Etcd3;
  /** The leader to check now, or undefined when there is none to check (this process leads, or none is known). */
  leader(): LeaderRecord | undefined;
  /** Between connection attempts, and their timeout. */
  intervalMs: number;
  /** Refusals in a row, for the same candidacy, before its lease is revoked. Default 3. */
  refusalsToRevoke?: number;
  /** Least time between two revocations by this process of leaders at one address. */
  minRevokeGapMs: number;
  logger: Logger;
  /** Opens one connection to `address`; by default a TCP connection, closed at once. */
  connect?: (address: string, timeoutMs: number) => Promise<ProbeOutcome>;
}

/** Refusals seen in a row for one candidacy. */
interface Evidence {
  key: string;
  createRevision: string;
  refusals: number;
  firstAtMs: number;
}

/** Checks the leader from `start()` to `stop()`. */
export class LeaderProbe {
  readonly #o: LeaderProbeOptions;
  readonly #refusals: number;
  readonly #connect: (address: string, timeoutMs: number) => Promise<ProbeOutcome>;
  #timer: NodeJS.Timeout | undefined;
  #evidence: Evidence | undefined;
  /** When this process last revoked the lease of a leader at each address. */
  readonly #revokedAtMs = new Map<string, number>();
  #stopped = true;

  /** See `LeaderProbeOptions`; nothing happens before `start()`. */
  constructor(options: LeaderProbeOptions) {
    this.#o = options;
    this.#refusals = Math.max(1, options.refusalsToRevoke ?? DEFAULT_LEADER_PROBE_REFUSALS);
    this.#connect = options.connect ?? probeTcp;
  }

  /** Starts probing; every `intervalMs` one attempt. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  /** Stops probing; an attempt under way is ignored. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#evidence = undefined;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#o.intervalMs);
  }

  async #tick(): Promise<void> {
    try {
      await this.#probe();
    } catch (err) {
      this.#o.logger.debug({ err }, 'leader probe failed');
    } finally {
      this.#schedule();
    }
  }

  async #probe(): Promise<void> {
    const leader = this.#o.leader();
    if (leader === undefined || !isHostPort(leader.address)) {
      this.#evidence = undefined;
      return;
    }
    const outcome = await this.#connect(leader.address, Math.max(MIN_CONNECT_TIMEOUT_MS, this.#o.intervalMs));
    if (this.#stopped || outcome === 'unknown') return;
    if (outcome === 'accepted') {
      this.#evidence = undefined;
      return;
    }
    const now = Date.now();
    const e = this.#evidence;
    const same = e !== undefined && e.key === leader.key && e.createRevision === leader.createRevision;
    const evidence = same ? e : { key: leader.key, createRevision: leader.createRevision, refusals: 0, firstAtMs: now };
    evidence.refusals += 1;
    this.#evidence = evidence;
    const spanMs = (this.#refusals - 1) * this.#o.intervalMs;
    if (evidence.refusals < this.#refusals || now - evidence.firstAtMs < spanMs) return;
    if (now - (this.#revokedAtMs.get(leader.address) ?? -Infinity) < this.#o.minRevokeGapMs) return;
    this.#evidence = undefined;
    await this.#revoke(leader, evidence.refusals);
  }

  /** Revokes the lease of `leader`'s candidacy if its key is still the one that refused. */
  async #revoke(leader: LeaderRecord, refusals: number): Promise<void> {
    const { client, logger } = this.#o;
    const found = await callEtcd({ operation: 'read the leader key' }, () => client.get(leader.key).exec());
    const kv = found.kvs[0];
    if (kv?.create_revision !== leader.createRevision || kv.lease !== leader.lease) return;
    this.#revokedAtMs.set(leader.address, Date.now());
    logger.warn(
      { leader: leader.address, key: leader.key, refusals },
      "the leader's address refuses connections: its process is gone; revoking its election lease",
    );
    await callEtcd({ operation: 'revoke the dead leader lease' }, () =>
      client.leaseClient.leaseRevoke({ ID: leader.lease }),
    ).catch((err: unknown) => logger.debug({ err }, 'the dead leader lease was not revoked; it expires after its TTL'));
  }
}

/**
 * One TCP connection to `address` (`host:port`), closed at once: `refused`
 * when the host answered that nothing listens there, `accepted` when it
 * connected, `unknown` on any other failure or after `timeoutMs`.
 */
export function probeTcp(address: string, timeoutMs: number): Promise<ProbeOutcome> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (outcome: ProbeOutcome): void => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => done('unknown'));
    socket.once('connect', () => done('accepted'));
    socket.once('error', (err) => done(refusedEverywhere(err) ? 'refused' : 'unknown'));
    socket.connect({ host, port });
  });
}

/** Whether every address tried refused: a host name may stand for several, tried in turn. */
function refusedEverywhere(err: Error): boolean {
  if (err instanceof AggregateError)
    return err.errors.length > 0 && err.errors.every((e) => refusedEverywhere(e as Error));
  return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
}
