/**
 * Options of a fault-suite run, their defaults and validation. The CLI
 * (`main.ts`), the make target and the integration test all go through
 * `resolveChaosOptions`.
 */

/** Every kind of fault the suite injects. */
export const FAULT_KINDS = [
  'kill-worker',
  'kill-coordinator',
  'kill-etcd',
  'restart-nats',
  'pause-worker',
  'pause-coordinator',
  'cut-etcd',
  'cut-nats',
] as const;

/** A kind of fault. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Default of `ChaosOptions.seed`. */
export const DEFAULT_SEED = 1;
/** Default of `ChaosOptions.faults`. */
export const DEFAULT_FAULTS = 20;
/** Default of `ChaosOptions.coordinators`: one leader and two standbys. */
export const DEFAULT_COORDINATORS = 3;
/** Default of `ChaosOptions.jobs`. */
export const DEFAULT_JOBS = 3;
/** Default of `ChaosOptions.spacingMs`. */
export const DEFAULT_SPACING_MS = 5_000;
/** Default of `ChaosOptions.sentencesPerSecond`. */
export const DEFAULT_SENTENCES_PER_SECOND = 100;
/** Default of `ChaosOptions.intervalMs`. */
export const DEFAULT_INTERVAL_MS = 500;
/** Default of `ChaosOptions.heartbeatIntervalMs`. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 250;
/** Default of `ChaosOptions.heartbeatTimeoutMs`. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 3_000;
/** Default of `ChaosOptions.leaderLeaseMs`. */
export const DEFAULT_LEADER_LEASE_MS = 5_000;
/** Default of `ChaosOptions.settleTimeoutMs`. */
export const DEFAULT_SETTLE_TIMEOUT_MS = 120_000;
/** Default of `ChaosOptions.orphanGraceMs`. */
export const DEFAULT_ORPHAN_GRACE_MS = 2_000;
/** Default of `ChaosOptions.stateSweepIntervalMs`. */
export const DEFAULT_STATE_SWEEP_INTERVAL_MS = 2_000;
/** Default of `ChaosOptions.etcdPrefix`. */
export const DEFAULT_ETCD_PREFIX = '/chaos/ckpt/';
/** Default of `ChaosOptions.subjectPrefix`. */
export const DEFAULT_SUBJECT_PREFIX = 'chaos';

/** How to run the fault suite. Every option has a default. */
export interface ChaosOptions {
  /** Seeds the schedule: the same seed draws the same faults at the same offsets. Default 1. */
  seed?: number;
  /** How many faults to inject. Default 20. */
  faults?: number;
  /**
   * Coordinator processes. With more than one, one must lead and the others
   * answer NOT_LEADER; with one, a coordinator fault restarts it. Default 3.
   */
  coordinators?: number;
  /**
   * Word count jobs run side by side, each with its own streams, corpus
   * and three worker processes; every check is made for each. Default 3.
   */
  jobs?: number;
  /**
   * Job groups the coordinators spread the jobs over (`--job-groups`): with
   * more than one, each job is led by its group's leader, the coordinators
   * share the groups, and leader faults aimed at each job in turn hit
   * different coordinators. Default 1: one leader runs every job.
   */
  jobGroups?: number;
  /** The kinds of faults to draw from. Default: every kind. */
  kinds?: readonly FaultKind[];
  /** Run NATS as a 3-node JetStream cluster instead of one server. Default false. */
  natsCluster?: boolean;
  /**
   * Run on the secured topology of `make cluster` (`startSecureCluster`):
   * mutual TLS on gRPC, NATS with TLS, client certificates and a user per
   * role, etcd with TLS, client certificates and a user limited to the
   * prefix. False runs everything in plain text. Default true.
   */
  secure?: boolean;
  /** Mean time from one fault's start to the next. Default 5000 ms. */
  spacingMs?: number;
  /** Rate at which the corpora are fed while the faults run, over all jobs. Default 100. */
  sentencesPerSecond?: number;
  /** The job's checkpoint interval. Default 500 ms. */
  intervalMs?: number;
  /** Heartbeat interval the coordinators tell the workers. Default 250 ms. */
  heartbeatIntervalMs?: number;
  /** A worker silent for this long loses its session; worker pauses last longer. Default 3000 ms. */
  heartbeatTimeoutMs?: number;
  /**
   * How long a silent leader keeps its lease, as the coordinators are
   * configured (see `coordinatorArgs`); leader pauses and partitions last
   * longer when there are standbys. Default 5000 ms.
   */
  leaderLeaseMs?: number;
  /**
   * The coordinators' `orphanGraceMs`: short, so that the end-of-run state
   * check can tell orphans the sweeps missed. Default 2000 ms.
   */
  orphanGraceMs?: number;
  /** The coordinators' `stateSweepIntervalMs`. Default 2000 ms. */
  stateSweepIntervalMs?: number;
  /** Extra flags for every `ckpt coordinator` process. Default none. */
  coordinatorArgs?: readonly string[];
  /** How long to wait for the complete output after the last fault. Default 120000 ms. */
  settleTimeoutMs?: number;
  /** The coordinators' etcd key prefix. Default `/chaos/ckpt/`. */
  etcdPrefix?: string;
  /** The coordinators' NATS subject prefix. Default `chaos`. */
  subjectPrefix?: string;
  /**
   * Where the leader election keeps its keys: leased keys starting with it
   * are read as election keys. Default: every leased key in etcd.
   */
  electionPrefix?: string;
  /** A directory that receives every coordinator's and worker's full stderr, one file each. Default: none. */
  logDir?: string;
  /** Receives progress lines. Default: none. */
  log?: (line: string) => void;
  /** Aborting it ends the schedule early; everything is still stopped. */
  signal?: AbortSignal;
}

/** The options with every default applied. */
export interface ChaosConfig {
  seed: number;
  faults: number;
  coordinators: number;
  jobs: number;
  jobGroups: number;
  kinds: readonly FaultKind[];
  natsCluster: boolean;
  secure: boolean;
  spacingMs: number;
  sentencesPerSecond: number;
  intervalMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  leaderLeaseMs: number;
  orphanGraceMs: number;
  stateSweepIntervalMs: number;
  coordinatorArgs: readonly string[];
  settleTimeoutMs: number;
  etcdPrefix: string;
  subjectPrefix: string;
  electionPrefix: string;
  logDir: string | undefined;
  log: (line: string) => void;
  signal: AbortSignal | undefined;
}

/** Applies defaults and validates; an error names the option. */
export function resolveChaosOptions(o: ChaosOptions = {}): ChaosConfig {
  const kinds = o.kinds ?? FAULT_KINDS;
  for (const kind of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
      throw new Error(`option kinds: unknown fault kind ${JSON.stringify(kind)} (known: ${FAULT_KINDS.join(', ')})`);
    }
  }
  if (kinds.length === 0 && (o.faults ?? DEFAULT_FAULTS) > 0) throw new Error('option kinds: must not be empty');
  const etcdPrefix = o.etcdPrefix ?? DEFAULT_ETCD_PREFIX;
  if (!etcdPrefix.startsWith('/') || !etcdPrefix.endsWith('/')) {
    throw new Error(`option etcdPrefix must start and end with "/", got ${JSON.stringify(etcdPrefix)}`);
  }
  return {
    seed: integer('seed', o.seed ?? DEFAULT_SEED, 0, 2 ** 32 - 1),
    faults: integer('faults', o.faults ?? DEFAULT_FAULTS, 0, 10_000),
    coordinators: integer('coordinators', o.coordinators ?? DEFAULT_COORDINATORS, 1, 9),
    jobs: integer('jobs', o.jobs ?? DEFAULT_JOBS, 1, 9),
    jobGroups: integer('jobGroups', o.jobGroups ?? 1, 1, 64),
    kinds: [...kinds],
    natsCluster: o.natsCluster ?? false,
    secure: o.secure ?? true,
    spacingMs: integer('spacingMs', o.spacingMs ?? DEFAULT_SPACING_MS, 500, 600_000),
    sentencesPerSecond: integer('sentencesPerSecond', o.sentencesPerSecond ?? DEFAULT_SENTENCES_PER_SECOND, 1, 100_000),
    intervalMs: integer('intervalMs', o.intervalMs ?? DEFAULT_INTERVAL_MS, 10, 600_000),
    heartbeatIntervalMs: integer(
      'heartbeatIntervalMs',
      o.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      10,
      60_000,
    ),
    heartbeatTimeoutMs: integer(
      'heartbeatTimeoutMs',
      o.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
      100,
      600_000,
    ),
    leaderLeaseMs: integer('leaderLeaseMs', o.leaderLeaseMs ?? DEFAULT_LEADER_LEASE_MS, 100, 600_000),
    orphanGraceMs: integer('orphanGraceMs', o.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS, 0, 3_600_000),
    stateSweepIntervalMs: integer(
      'stateSweepIntervalMs',
      o.stateSweepIntervalMs ?? DEFAULT_STATE_SWEEP_INTERVAL_MS,
      100,
      3_600_000,
    ),
    coordinatorArgs: [...(o.coordinatorArgs ?? [])],
    settleTimeoutMs: integer('settleTimeoutMs', o.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS, 1_000, 3_600_000),
    etcdPrefix,
    subjectPrefix: o.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX,
    electionPrefix: o.electionPrefix ?? '',
    logDir: o.logDir,
    log: o.log ?? (() => undefined),
    signal: o.signal,
  };
}

/**
 * The orphan grace and sweep interval the coordinators run with: the
 * options, unless `coordinatorArgs` sets them (the last flag wins, as the
 * coordinator's command line takes it).
 */
export function stateCleanupInForce(config: ChaosConfig): { orphanGraceMs: number; stateSweepIntervalMs: number } {
  return {
    orphanGraceMs: flagValue(config.coordinatorArgs, '--orphan-grace-ms') ?? config.orphanGraceMs,
    stateSweepIntervalMs: flagValue(config.coordinatorArgs, '--state-sweep-interval-ms') ?? config.stateSweepIntervalMs,
  };
}

/** The number the last `flag N` or `flag=N` in `args` gives; undefined when none does. */
function flagValue(args: readonly string[], flag: string): number | undefined {
  let value: number | undefined;
  args.forEach((arg, i) => {
    const text = arg === flag ? args[i + 1] : arg.startsWith(`${flag}=`) ? arg.slice(flag.length + 1) : undefined;
    if (text !== undefined && text.trim() !== '' && Number.isFinite(Number(text))) value = Number(text);
  });
  return value;
}

/** Parses a comma-separated list of fault kinds, as `FAULT_KINDS` and `--kinds` take it. */
export function parseKinds(text: string): FaultKind[] {
  return text
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '') as FaultKind[];
}

function integer(option: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new Error(`option ${option} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}
