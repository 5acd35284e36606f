/**
 * The job groups of one coordinator process, as `runCoordinator` wires
 * them: the groups themselves (`JobGroup`, one election and coordinator
 * each), the check of their number against the prefix's and the campaigns
 * in every group, the balance that shares them among the processes, and
 * the view of each group that `RunningCoordinator.group(g)` gives.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import type { CoordinatorConfig } from '../config/config.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import type { CoordinatorMetrics } from '../metrics/coordinator-metrics.js';
import { GroupBalance } from './group-balance.js';
import { JobGroup, jobFigures, type ProcessParts } from './job-group.js';
import { checkJobGroups } from './job-groups-record.js';
import type { LeaderTerm } from './leadership.js';
import type { ProcessView } from './process-view.js';

/** How often `firstOutcome` and `whenLeader` look at the election while they wait. */
const ELECTION_POLL_MS = 10;
/** How often the balance of job groups reads the candidacies. */
const BALANCE_INTERVAL_MS = 500;

/** One job group of a running coordinator process. */
export interface RunningGroup {
  /** The group's number, in `[0, jobGroups)`. */
  readonly group: number;
  /**
   * The group's coordinator while this process leads the group; throws a
   * `CkptError` (NOT_LEADER on a standby, TAKING_OVER while it takes over,
   * SHUTTING_DOWN once it stops).
   */
  readonly coordinator: Coordinator;
  /** True while this process leads the group and its coordinator runs. */
  readonly isLeader: boolean;
  /** The group leader's advertised address as far as known: this process's own while it leads. */
  readonly leader: string | undefined;
  /** The group's leadership term while this process leads it. */
  readonly term: LeaderTerm | undefined;
  /** Resolves once this process leads the group with its coordinator running; rejects after `timeoutMs`. */
  whenLeader(timeoutMs: number): Promise<void>;
}

/**
 * The process's `config.jobGroups` groups, not campaigning yet.
 * `onServing` hears when a group's coordinator starts or stops serving;
 * a group that starts serving reads its jobs' newest checkpoints back
 * into the metrics.
 */
export function createJobGroups(
  parts: ProcessParts,
  onServing: (group: JobGroup, serving: boolean) => void,
): JobGroup[] {
  const { config, metrics } = parts;
  return Array.from(
    { length: config.jobGroups },
    (_, group) =>
      new JobGroup({
        group,
        groups: config.jobGroups,
        parts,
        onServing: (g, serving) => {
          onServing(g, serving);
          const leading = g.host.coordinator;
          if (serving && leading !== undefined)
            void readBackLatest(leading, () => g.host.coordinator === leading, metrics);
        },
      }),
  );
}

/** The balance that shares `groups` among the processes of the prefix (`group-balance.ts`), not started yet. */
export function groupBalance(
  config: CoordinatorConfig,
  parts: { electionClient: Etcd3; groups: readonly JobGroup[]; self: string; logger: Logger },
): GroupBalance {
  const { electionClient, groups, self, logger } = parts;
  return new GroupBalance({
    client: electionClient,
    prefix: config.etcdPrefix,
    groups,
    self: () => self,
    intervalMs: BALANCE_INTERVAL_MS,
    settleMs: 2 * config.leaseTtlMs,
    logger,
  });
}

/**
 * Checks the number of job groups against the prefix's, then campaigns in
 * every group. Waits for the check at most `etcdTimeoutMs`: a mismatch
 * found by then rejects; an etcd that does not answer by then leaves the
 * check (and the campaigns after it) to go on in the background, as the
 * campaigns themselves would, and a mismatch found later leaves this
 * process a standby that never campaigns, saying why in its log and
 * `/readyz`.
 */
export async function startCampaigns(
  config: CoordinatorConfig,
  parts: {
    electionClient: Etcd3;
    groups: readonly JobGroup[];
    balance: GroupBalance;
    view: ProcessView;
    self: string;
    logger: Logger;
  },
): Promise<void> {
  const { electionClient, groups, balance, view, self, logger } = parts;
  const stopped = new AbortController();
  view.onClose(() => stopped.abort());
  const checked = checkJobGroups(electionClient, config.etcdPrefix, config.jobGroups, logger, stopped.signal).then(
    () => {
      if (stopped.signal.aborted) return;
      for (const g of groups) g.start(self);
      balance.start();
    },
  );
  const timer = delay(config.etcdTimeoutMs, 'late' as const, { signal: stopped.signal, ref: false }).catch(
    () => 'late' as const,
  );
  const outcome = await Promise.race([checked.then(() => 'checked' as const), timer]);
  if (outcome === 'checked') return;
  checked.catch((err: unknown) => {
    const error = CkptError.from(err);
    if (error.reason === 'SHUTTING_DOWN') return;
    view.refuse(error);
    logger.error({ err: error }, 'this coordinator does not campaign');
  });
}

/**
 * Reads back, at the start of a term, each job's newest completed
 * checkpoint, so that the metrics show it before this leader commits one;
 * stops once the term is over. Failures leave the figure to the next commit.
 */
async function readBackLatest(
  coordinator: Coordinator,
  current: () => boolean,
  metrics: CoordinatorMetrics,
): Promise<void> {
  for (const { jobId } of [...jobFigures(coordinator)]) {
    if (!current()) return;
    const summaries = await coordinator.listCheckpoints(jobId).catch(() => []);
    const newest = summaries.find((s) => s.state === 'CHECKPOINT_STATE_COMPLETED');
    if (newest !== undefined && current()) metrics.knownCompleted(newest);
  }
}

/** One group as `RunningGroup`. */
export function runningGroup(g: JobGroup): RunningGroup {
  const { host, leadership } = g;
  return {
    group: g.group,
    get coordinator() {
      return host.current();
    },
    get isLeader() {
      return host.state === 'leading';
    },
    get leader() {
      return leadership.leader;
    },
    get term() {
      return host.state === 'leading' ? leadership.term : undefined;
    },
    async whenLeader(timeoutMs) {
      const until = Date.now() + timeoutMs;
      while (host.state !== 'leading') {
        if (host.state === 'stopped') throw new CkptError('SHUTTING_DOWN', 'the coordinator process has stopped');
        if (Date.now() >= until) throw new CkptError('NOT_LEADER', `not elected leader within ${timeoutMs} ms`);
        await delay(ELECTION_POLL_MS);
      }
    },
  };
}

/** Waits until every group is led here or seen led elsewhere, or `timeoutMs` passed. */
export async function firstOutcome(groups: readonly JobGroup[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  const decided = (g: JobGroup): boolean =>
    g.host.state === 'leading' || (g.leadership.state === 'campaigning' && g.leadership.leader !== undefined);
  while (!groups.every(decided) && Date.now() < until) await delay(ELECTION_POLL_MS);
}
