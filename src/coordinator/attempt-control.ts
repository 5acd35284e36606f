/**
 * A job's attempts: restoring every task to the recovery's checkpoint (the
 * latest, or the restore point an operator chose) in a new epoch, starting
 * them once all report ready, and deciding what a worker joining or
 * leaving means. The tracker holds the state; this class talks
 * to the sessions and reads the manifest to restore from.
 */
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { RestoreCommand } from '../gen/ckpt/v1/RestoreCommand.js';
import { CkptError } from '../core/errors.js';
import type { JobTracker } from '../core/job-tracker.js';
import type { CheckpointStore } from '../core/ports.js';
import type { Logger } from '../log/index.js';
import { restoreReply } from './reply-encoding.js';
import type { Session } from './sessions.js';

/** What attempt control needs from its job. */
export interface AttemptDeps {
  tracker: JobTracker;
  store: CheckpointStore;
  logger: Logger;
  /** The live sessions of the job. */
  sessions: () => Session[];
  /** The leader's term, sent with every command. */
  term: number;
  /** Starts a recovery (new epoch, restore of every task). */
  recover: (why: string) => void;
  /** Called when every task is ready and started. */
  onStarted: () => void;
  /** The job's stored state cannot be restored: it is quarantined. */
  quarantine: (why: string) => void;
}

/** Restore, ready and start for one job. */
export class AttemptControl {
  private readonly deps: AttemptDeps;
  private readonly log: Logger;
  private manifest: (RestoreManifest & { id: number }) | undefined;
  /** The epoch each session was last sent (or is being sent) a restore of. */
  private readonly restoring = new WeakMap<Session, number>();

  constructor(deps: AttemptDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'attempt', jobId: deps.tracker.jobId });
  }

  /**
   * A checkpoint was committed: a recovery restores it unless a newer one
   * commits first, so its entries are kept, in place of those of the one
   * before, and a recovery need not read them back from etcd.
   */
  committed(manifest: Manifest__Output): void {
    this.manifest = restoreManifest(manifest);
  }

  /** A session has attached (after its welcome was sent). */
  onAttach(session: Session, helloEpoch: number): void {
    const t = this.deps.tracker;
    if (t.attempt === 'restoring') {
      this.restore(session);
    } else if (t.attempt === 'resuming' && helloEpoch === t.epoch) {
      this.log.info({ workerId: session.workerId, epoch: helloEpoch }, 'worker resumed in the current epoch');
      this.ready(session, helloEpoch, session.taskIds);
    } else {
      this.log.info({ workerId: session.workerId, epoch: helloEpoch }, 'worker joined: the job recovers');
      this.deps.recover(
        `a worker joined ${helloEpoch === 0 ? 'without an epoch' : `in epoch ${helloEpoch}`} while the job ${t.attempt === 'running' ? 'was running' : `resumes epoch ${t.epoch}`}`,
      );
    }
  }

  /**
   * A session's tasks detached. If they may have run in this epoch, the
   * others must roll back with them; while restoring, nothing ran yet and
   * the tasks simply restore when a worker attaches them again.
   */
  onDetach(session: Session, tasks: readonly string[], why: string): void {
    if (tasks.length === 0 || this.deps.tracker.attempt === 'restoring') return;
    this.deps.recover(`a worker left: ${why}`);
  }

  /** A worker reports tasks ready; the last one starts the job. */
  ready(session: Session, epoch: number, taskIds: readonly string[]): void {
    const t = this.deps.tracker;
    if (epoch !== t.epoch) {
      this.log.debug({ workerId: session.workerId, epoch }, 'ready report of another epoch ignored');
      return;
    }
    if (!t.markReady(session.workerId, epoch, taskIds)) return;
    const start = { jobId: t.jobId, epoch, term: this.deps.term };
    for (const s of this.deps.sessions()) s.channel.send({ start });
    this.log.info({ epoch, tasks: t.readyTasks }, 'every task ready: job started');
    this.deps.onStarted();
  }

  /** Sends every session its part of the recovery's checkpoint. */
  restoreAll(): void {
    for (const session of this.deps.sessions()) this.restore(session);
  }

  /**
   * Sends one session its part of the recovery's checkpoint, read from
   * etcd: once per session and epoch (a session that attaches while a
   * recovery broadcasts would otherwise get it from the attach and from
   * `restoreAll`), and not once the job has moved to a newer epoch while
   * the manifest was read (that epoch's restore follows).
   */
  restore(session: Session): void {
    const epoch = this.deps.tracker.epoch;
    if (this.restoring.get(session) === epoch) return;
    this.restoring.set(session, epoch);
    this.command(session).then(
      (restore) => {
        if (restore.epoch !== this.deps.tracker.epoch) {
          this.log.debug({ workerId: session.workerId, epoch: restore.epoch }, 'restore of a past epoch not sent');
          return;
        }
        session.channel.send(restoreReply(restore));
      },
      (err: unknown) => {
        const error = CkptError.from(err);
        if (!error.retryable && error.reason !== 'SHUTTING_DOWN') {
          // The checkpoint to restore is unreadable for good (a corrupt manifest): no attempt can start.
          this.deps.quarantine(
            `checkpoint ${this.deps.tracker.recoveryCheckpointId} cannot be restored: ${error.message}`,
          );
          return;
        }
        this.log.error({ err, workerId: session.workerId }, 'restore plan not read; the worker must attach again');
        session.channel.end(
          new CkptError('UNAVAILABLE', `restore plan not read: ${error.message}`, {
            jobId: this.deps.tracker.jobId,
            retryable: true,
          }),
        );
      },
    );
  }

  private async command(session: Session): Promise<RestoreCommand> {
    const t = this.deps.tracker;
    const epoch = t.epoch;
    const checkpointId = t.recoveryCheckpointId;
    const { tasks, sourceJobId } = await this.manifestTasks(checkpointId);
    const snapshots: Manifest__Output['tasks'] = [];
    for (const taskId of session.taskIds) {
      const entry = tasks.get(taskId);
      if (entry !== undefined) snapshots.push(entry);
    }
    const nextCheckpointId = t.ids.nextId;
    return { jobId: t.jobId, epoch, checkpointId, snapshots, term: this.deps.term, nextCheckpointId, sourceJobId };
  }

  private async manifestTasks(checkpointId: number): Promise<RestoreManifest> {
    if (checkpointId === 0) return { tasks: new Map(), sourceJobId: '' };
    if (this.manifest?.id === checkpointId) return this.manifest;
    const manifest = await this.deps.store.readManifest(this.deps.tracker.jobId, checkpointId);
    if (manifest === undefined) {
      throw new CkptError('INTERNAL', `checkpoint ${checkpointId} to restore has no manifest in etcd`, {
        jobId: this.deps.tracker.jobId,
        checkpointId,
      });
    }
    this.manifest = restoreManifest(manifest);
    return this.manifest;
  }
}

/**
 * A manifest's entries by task, indexed when a recovery first asks: every
 * commit keeps its manifest here, and indexing 100,000 entries at each
 * would cost every checkpoint what only a recovery needs.
 */
function restoreManifest(manifest: Manifest__Output): RestoreManifest & { id: number } {
  let tasks: RestoreManifest['tasks'] | undefined;
  return {
    id: manifest.checkpointId,
    get tasks() {
      tasks ??= new Map(manifest.tasks.map((task) => [task.taskId, task]));
      return tasks;
    },
    sourceJobId: manifest.fromSavepoint?.jobId ?? '',
  };
}

/** The entries of the manifest a recovery restores, by task, and the job whose savepoint it maps (or ''). */
interface RestoreManifest {
  tasks: Map<string, Manifest__Output['tasks'][number]>;
  sourceJobId: string;
}
