/**
 * The fuzz suite's settings and its current fixture: the fixture is built
 * again (a new coordinator child under new prefixes) after any failed case,
 * so that every case after a failure, shrinking included, starts from a
 * known state.
 */
import { snapshotEtcd, type EtcdSnapshot } from './etcd-state.js';
import { Fixture, type FixtureServers } from './fixture.js';

/** Settings, from the environment. */
export interface FuzzOptions {
  /** Generated messages per target (`CKPT_FUZZ_N`, default 1000). */
  n: number;
  /** Deadline of one call or session exchange (`CKPT_FUZZ_DEADLINE_MS`, default 5000). */
  deadlineMs: number;
  /** fast-check seed (`CKPT_FUZZ_SEED`, default: random, printed on failure). */
  seed: number | undefined;
  /** Time fast-check may spend shrinking a failure (`CKPT_FUZZ_SHRINK_MS`, default 60000). */
  shrinkMs: number;
  /** Go on after failed cases and list every kind of problem (`CKPT_FUZZ_SURVEY=1`), instead of shrinking the first. */
  survey: boolean;
  /** A GetJob probe of the fixture after this many cases. */
  probeEvery: number;
  /** Tasks of the `session` and `first` jobs used in turn. */
  lanes: number;
}

/** Default of `FuzzOptions.n`. */
export const DEFAULT_FUZZ_N = 1_000;

function numberFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return n;
}

/** The settings from `CKPT_FUZZ_*` variables. */
export function fuzzOptions(env: NodeJS.ProcessEnv = process.env): FuzzOptions {
  const seed = env.CKPT_FUZZ_SEED;
  return {
    n: numberFrom(env, 'CKPT_FUZZ_N', DEFAULT_FUZZ_N),
    deadlineMs: numberFrom(env, 'CKPT_FUZZ_DEADLINE_MS', 5_000),
    seed: seed === undefined || seed === '' ? undefined : Number(seed),
    shrinkMs: numberFrom(env, 'CKPT_FUZZ_SHRINK_MS', 60_000),
    survey: env.CKPT_FUZZ_SURVEY === '1',
    probeEvery: 25,
    lanes: 8,
  };
}

/** The fixture of the moment and the etcd state every case is compared with. */
export class FuzzEnv {
  readonly options: FuzzOptions;
  readonly #servers: FixtureServers;
  #fixture: Fixture | undefined;
  #dirty = true;
  #baseline: EtcdSnapshot | undefined;
  /** Jobs a task failure made recover whose new epoch has not been seen in etcd yet. */
  readonly recovering = new Set<string>();
  /** How many fixtures were built. */
  builds = 0;

  constructor(servers: FixtureServers, options: FuzzOptions = fuzzOptions()) {
    this.#servers = servers;
    this.options = options;
  }

  /** The fixture, built again first when the last case failed or the coordinator is gone. */
  async fixture(): Promise<Fixture> {
    if (this.#fixture !== undefined && !this.#dirty && this.#fixture.coordinator.alive) return this.#fixture;
    await this.#fixture?.stop();
    this.#fixture = undefined;
    this.#baseline = undefined;
    this.recovering.clear();
    const fixture = await Fixture.start(this.#servers, this.options.lanes);
    this.builds += 1;
    this.#fixture = fixture;
    this.#dirty = false;
    return fixture;
  }

  /** Builds the fixture again before the next case. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** The etcd state after the last case (read now if there is none). */
  async baseline(fx: Fixture): Promise<EtcdSnapshot> {
    this.#baseline ??= await snapshotEtcd(fx.etcd, fx.etcdPrefix);
    return this.#baseline;
  }

  setBaseline(snapshot: EtcdSnapshot): void {
    this.#baseline = snapshot;
  }

  /** Reads the etcd state again before the next case (something outside the cases changed it). */
  forgetBaseline(): void {
    this.#baseline = undefined;
  }

  async stop(): Promise<void> {
    await this.#fixture?.stop();
    this.#fixture = undefined;
  }
}
