/**
 * Drawing a fault schedule from a seed. Pure: the same inputs give the same
 * schedule, so a failing seed can be run again.
 */
import type { FaultKind } from './options.js';
import { between, mulberry32, pick, type Random } from './prng.js';

/** Whether a link fault resets connections or holds their bytes. */
export type LinkMode = 'cut' | 'stall';

/** Which links a link fault affects. */
export type LinkScope =
  /** Every coordinator's link to one etcd member. */
  | { to: 'etcd-member'; member: number }
  /** The leading coordinator's links to every etcd member (a partition of the leader). */
  | { to: 'leader-etcd' }
  /** Every process's links to NATS. */
  | { to: 'nats-all' }
  /** The leading coordinator's links to NATS. */
  | { to: 'leader-nats' }
  /** One worker's links to NATS. */
  | { to: 'worker-nats'; worker: number };

/** What a fault does, by kind. */
export type FaultAction =
  | { kind: 'kill-worker' | 'pause-worker'; worker: number }
  | { kind: 'kill-coordinator' | 'pause-coordinator' }
  | { kind: 'kill-etcd'; member: number }
  | { kind: 'restart-nats'; server: number }
  | { kind: 'cut-etcd' | 'cut-nats'; scope: LinkScope; mode: LinkMode };

/** One fault of a schedule. */
export type PlannedFault = FaultAction & {
  /** 1-based position in the schedule. */
  n: number;
  /** Earliest start, from the start of the schedule. */
  atMs: number;
  /** How long the fault holds: a process down before its restart, paused, or a link cut. */
  holdMs: number;
};

/** What the schedule is drawn for. */
export interface ScheduleInput {
  seed: number;
  faults: number;
  kinds: readonly FaultKind[];
  spacingMs: number;
  coordinators: number;
  workers: number;
  etcdMembers: number;
  natsServers: number;
  heartbeatTimeoutMs: number;
  leaderLeaseMs: number;
}

/**
 * `faults` faults, the n-th starting in the n-th slot of `spacingMs`, at a
 * random point of the slot's first half. Faults run one after another; a
 * fault that would start before the previous one ended waits for it.
 */
export function drawSchedule(input: ScheduleInput): PlannedFault[] {
  const random = mulberry32(input.seed);
  const out: PlannedFault[] = [];
  for (let i = 0; i < input.faults; i++) {
    const kind = pick(random, input.kinds);
    const atMs = i * input.spacingMs + between(random, 0, Math.floor(input.spacingMs / 2));
    const action = drawAction(random, kind, input);
    out.push({ ...action, n: i + 1, atMs, holdMs: drawHold(random, action, input) });
  }
  return out;
}

/** The time the whole schedule spans, for feeding input over it. */
export function scheduleSpanMs(input: Pick<ScheduleInput, 'faults' | 'spacingMs'>): number {
  return Math.max(1, input.faults) * input.spacingMs;
}

function drawAction(random: Random, kind: FaultKind, input: ScheduleInput): FaultAction {
  switch (kind) {
    case 'kill-worker':
    case 'pause-worker':
      return { kind, worker: between(random, 0, input.workers - 1) };
    case 'kill-coordinator':
    case 'pause-coordinator':
      return { kind };
    case 'kill-etcd':
      return { kind, member: between(random, 0, input.etcdMembers - 1) };
    case 'restart-nats':
      return { kind, server: between(random, 0, input.natsServers - 1) };
    case 'cut-etcd': {
      const scope: LinkScope =
        random() < 0.5
          ? { to: 'etcd-member', member: between(random, 0, input.etcdMembers - 1) }
          : { to: 'leader-etcd' };
      return { kind, scope, mode: drawMode(random) };
    }
    case 'cut-nats': {
      const which = pick(random, ['nats-all', 'leader-nats', 'worker-nats'] as const);
      const scope: LinkScope =
        which === 'worker-nats' ? { to: which, worker: between(random, 0, input.workers - 1) } : { to: which };
      return { kind, scope, mode: drawMode(random) };
    }
  }
}

function drawMode(random: Random): LinkMode {
  return random() < 0.7 ? 'cut' : 'stall';
}

/**
 * How long a fault holds. Pauses outlast the timeout that notices them; a
 * leader's pause or partition outlasts its lease when a standby can take over.
 */
function drawHold(random: Random, action: FaultAction, input: ScheduleInput): number {
  const leaderSilenceMs = input.coordinators > 1 ? input.leaderLeaseMs : input.heartbeatTimeoutMs;
  switch (action.kind) {
    case 'kill-worker':
    case 'kill-coordinator':
      return between(random, 200, 1500);
    case 'kill-etcd':
      return between(random, 500, 3000);
    case 'restart-nats':
      return between(random, 200, 2000);
    case 'pause-worker':
      return input.heartbeatTimeoutMs + between(random, 500, 2000);
    case 'pause-coordinator':
      return leaderSilenceMs + between(random, 500, 2000);
    case 'cut-etcd':
    case 'cut-nats':
      if (action.scope.to === 'leader-etcd' && input.coordinators > 1) {
        return leaderSilenceMs + between(random, 500, 2000);
      }
      return between(random, 1000, 4000);
  }
}

/** A fault in one line, e.g. `#3 kill-worker worker-1 (hold 700 ms)`. */
export function describeFault(f: PlannedFault): string {
  return `#${f.n} ${f.kind} ${describeTarget(f)} (hold ${f.holdMs} ms)`;
}

function describeTarget(f: FaultAction): string {
  switch (f.kind) {
    case 'kill-worker':
    case 'pause-worker':
      return `worker-${f.worker}`;
    case 'kill-coordinator':
    case 'pause-coordinator':
      return 'leader';
    case 'kill-etcd':
      return `etcd n${f.member + 1}`;
    case 'restart-nats':
      return `nats${f.server + 1}`;
    case 'cut-etcd':
    case 'cut-nats':
      return `${f.mode} ${describeScope(f.scope)}`;
  }
}

function describeScope(scope: LinkScope): string {
  switch (scope.to) {
    case 'etcd-member':
      return `etcd n${scope.member + 1} from every coordinator`;
    case 'leader-etcd':
      return 'the leader from etcd';
    case 'nats-all':
      return 'every process from NATS';
    case 'leader-nats':
      return 'the leader from NATS';
    case 'worker-nats':
      return `worker-${scope.worker} from NATS`;
  }
}
