/**
 * The coordinator a process runs while it leads. The gRPC services ask the
 * host for the coordinator on every call: a standby refuses with
 * NOT_LEADER, naming the leader when it is known. Elections and
 * depositions start and stop coordinators one at a time, in order.
 */
import { CkptError } from '../core/errors.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { Logger } from '../log/index.js';
import type { LeaderTerm } from './leadership.js';

/** What the gRPC services call: the coordinator of the leader, or a refusal. */
export interface CoordinatorProvider {
  /**
   * The running coordinator of `jobId` (of its job group, when the jobs
   * form several); throws NOT_LEADER on a standby (of that group), naming
   * its leader, TAKING_OVER while starting, SHUTTING_DOWN when stopped.
   */
  current(jobId?: string): Coordinator;
}

/** `following` a leader elsewhere, `starting` or `leading` here, or `stopped` for good. */
export type HostState = 'following' | 'starting' | 'leading' | 'stopped';

/** Options of a `CoordinatorHost`. */
export interface CoordinatorHostOptions {
  /** Builds the coordinator of a leadership won in `term`. */
  create(term: LeaderTerm): Coordinator;
  /** The leader's address as far as known, for NOT_LEADER refusals. */
  leader(): string | undefined;
  /** The coordinator is serving, or no longer (the health service follows it). */
  onServing(serving: boolean): void;
  /** A coordinator could not start or lost its leadership: the owner should step down. */
  onFailed(why: string): void;
  logger: Logger;
}

/** Runs a coordinator while this process leads. */
export class CoordinatorHost implements CoordinatorProvider {
  readonly #o: CoordinatorHostOptions;
  readonly #log: Logger;
  #state: HostState = 'following';
  #coordinator: Coordinator | undefined;
  #transitions: Promise<void> = Promise.resolve();
  /** Counts leaderships; a transition of an older one does nothing. */
  #generation = 0;

  /** See `CoordinatorHostOptions`. */
  constructor(options: CoordinatorHostOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'host' });
  }

  /** `following`, `starting`, `leading` or `stopped`. */
  get state(): HostState {
    return this.#state;
  }

  /** The coordinator while leading. */
  get coordinator(): Coordinator | undefined {
    return this.#state === 'leading' ? this.#coordinator : undefined;
  }

  current(): Coordinator {
    if (this.#state === 'leading' && this.#coordinator !== undefined) return this.#coordinator;
    if (this.#state === 'following') throw notLeader(this.#o.leader());
    if (this.#state === 'starting') throw takingOver();
    throw new CkptError('SHUTTING_DOWN', 'the coordinator is shutting down', { retryable: true });
  }

  /** This process was elected in `term`: builds and starts its coordinator. */
  lead(term: LeaderTerm): void {
    if (this.#state === 'stopped') return;
    const generation = ++this.#generation;
    this.#state = 'starting';
    this.#enqueue(async () => {
      if (generation !== this.#generation) return;
      const coordinator = this.#o.create(term);
      this.#coordinator = coordinator;
      try {
        await coordinator.start();
      } catch (err) {
        this.#log.error({ err, term: term.term }, 'the coordinator did not start');
        if (generation === this.#generation) this.#o.onFailed(`the coordinator did not start: ${errorText(err)}`);
        return;
      }
      if (generation !== this.#generation) return;
      this.#state = 'leading';
      this.#o.onServing(true);
    });
  }

  /**
   * This process no longer leads: calls are refused with NOT_LEADER at once,
   * and the coordinator stops, ending its sessions with NOT_LEADER (naming
   * the leader when known) so that workers attach to the next leader.
   */
  follow(why: string): void {
    if (this.#state === 'stopped') return;
    this.#generation += 1;
    this.#state = 'following';
    this.#o.onServing(false);
    // The leader is named as known when the sessions end, so that workers go there rather than to the next address.
    this.#enqueue(() => this.#stopCoordinator(notLeader(this.#o.leader(), why)));
  }

  /**
   * Stops for good: the coordinator (if any) stops after the transitions
   * queued before, ending its sessions with SHUTTING_DOWN.
   */
  async stop(): Promise<void> {
    if (this.#state !== 'stopped') {
      this.#generation += 1;
      this.#state = 'stopped';
      this.#o.onServing(false);
      this.#enqueue(() => this.#stopCoordinator(undefined));
    }
    await this.#transitions;
  }

  /** Resolves when every transition queued so far has run. */
  settled(): Promise<void> {
    return this.#transitions;
  }

  async #stopCoordinator(reason: CkptError | undefined): Promise<void> {
    const coordinator = this.#coordinator;
    this.#coordinator = undefined;
    await coordinator?.stop(reason);
  }

  #enqueue(run: () => Promise<void>): void {
    this.#transitions = this.#transitions
      .then(run)
      .catch((err: unknown) => this.#log.error({ err }, 'leadership transition failed'));
  }
}

/** The refusal of a coordinator elected leader that is still loading its jobs: retry it with backoff. */
export function takingOver(): CkptError {
  return new CkptError('TAKING_OVER', 'the coordinator was elected leader and is still taking over', {
    retryable: true,
  });
}

/** The refusal of a standby, naming the leader when known. */
export function notLeader(leader: string | undefined, why?: string): CkptError {
  const where = leader === undefined ? 'no leader is known yet' : `the leader is ${leader}`;
  const message = `this coordinator is not the leader${why === undefined ? '' : ` (${why})`}; ${where}`;
  return new CkptError('NOT_LEADER', message, { retryable: true, ...(leader === undefined ? {} : { leader }) });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
