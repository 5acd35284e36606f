/**
 * How the coordinator cleans up task state: its settings with their
 * defaults, and what the cleanup sees of a job.
 */
import type { CheckpointStore, StatePieces } from '../core/ports.js';
import type { HandleLike } from '../core/shared-state-registry.js';
import {
  DEFAULT_CANCELED_STATE_RETENTION_MS,
  DEFAULT_ORPHAN_GRACE_MS,
  DEFAULT_STATE_SWEEP_INTERVAL_MS,
} from '../core/state-sweep.js';
import type { JobRuntime } from './job-runtime.js';
import { StateCleanup, type CleanupJob } from './state-cleanup.js';
import { SharedStateRegistry } from '../core/shared-state-registry.js';
import type { Logger } from '../log/index.js';
import type { Session } from './sessions.js';

/** How the coordinator cleans up task state. */
export interface StateCleanupSettings {
  /** The object store buckets it reaches itself. @default undefined (none: only workers delete) */
  pieces?: StatePieces;
  /** A piece no checkpoint names is an orphan only once it is this old. @default 600000 */
  orphanGraceMs?: number;
  /** The leader sweeps for orphans this often (and at its start). @default 300000 */
  stateSweepIntervalMs?: number;
  /** A canceled job's state is kept this long. @default 0 */
  canceledStateRetentionMs?: number;
  /**
   * The handles a job's savepoints pin: kept whatever retention drops.
   * @default none; the coordinator passes those of the savepoints in etcd
   */
  pinnedHandles?: (jobId: string) => Promise<readonly HandleLike[]>;
}

/** The settings with every default applied. */
export type ResolvedStateCleanupSettings = Required<Omit<StateCleanupSettings, 'pieces'>> &
  Pick<StateCleanupSettings, 'pieces'>;

/** Applies the defaults. */
export function resolveStateCleanupSettings(settings: StateCleanupSettings): ResolvedStateCleanupSettings {
  return {
    pieces: settings.pieces,
    orphanGraceMs: settings.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS,
    stateSweepIntervalMs: settings.stateSweepIntervalMs ?? DEFAULT_STATE_SWEEP_INTERVAL_MS,
    canceledStateRetentionMs: settings.canceledStateRetentionMs ?? DEFAULT_CANCELED_STATE_RETENTION_MS,
    pinnedHandles: settings.pinnedHandles ?? (() => Promise.resolve([])),
  };
}

/** What the state cleanup sees of a job, read when asked. */
export function cleanupJob(runtime: JobRuntime): CleanupJob {
  const { tracker } = runtime;
  return {
    jobId: tracker.jobId,
    canceled: tracker.state === 'JOB_STATE_CANCELED',
    retainedCheckpointIds: tracker.retainedCheckpointIds,
    mayCommit: (id) => tracker.find(id)?.status === 'PENDING' || id >= tracker.ids.nextId,
  };
}

/** The handles the savepoints of a job pin: every task handle of every stored savepoint. */
export async function savepointHandles(store: CheckpointStore, jobId: string): Promise<HandleLike[]> {
  const savepoints = await store.listSavepoints(jobId);
  return savepoints.flatMap((sp) => (sp.manifest?.tasks ?? []).flatMap((t) => (t.state === null ? [] : [t.state])));
}

/** What the coordinator gives its state cleanup. */
export interface CleanupHost {
  store: CheckpointStore;
  sessionsOf(jobId: string): Session[];
  /** The runtime of a job this coordinator runs. */
  findJob(jobId: string): JobRuntime | undefined;
  term: number;
  now(): number;
  log: Logger;
}

/** The coordinator's state cleanup: its settings, a fresh registry, and savepoints pinning their handles. */
export function createStateCleanup(settings: StateCleanupSettings, host: CleanupHost): StateCleanup {
  return new StateCleanup({
    ...resolveStateCleanupSettings({ pinnedHandles: (jobId) => savepointHandles(host.store, jobId), ...settings }),
    registry: new SharedStateRegistry(),
    store: host.store,
    sessionsOf: (jobId) => host.sessionsOf(jobId),
    job: (jobId) => {
      const runtime = host.findJob(jobId);
      return runtime === undefined ? undefined : cleanupJob(runtime);
    },
    term: host.term,
    now: () => host.now(),
    log: host.log,
  });
}
