/**
 * The control messages one job's coordinator publishes on NATS: trigger,
 * complete, abort and recover, each stamped with the leader's term so that
 * workers drop those of a deposed leader.
 */
import type { AbortCause, Checkpoint } from '../core/checkpoint.js';
import type { ControlBus } from '../core/ports.js';
import type { Logger } from '../log/index.js';

/** What a job's broadcasts need. */
export interface JobBroadcastsDeps {
  jobId: string;
  bus: ControlBus;
  /** The leader's term, sent with every control message. */
  term: number;
  /** The job's logger. */
  log: Logger;
}

/** One job's control messages. */
export class JobBroadcasts {
  private readonly deps: JobBroadcastsDeps;

  constructor(deps: JobBroadcastsDeps) {
    this.deps = deps;
  }

  /** Sends a checkpoint's trigger to the job's sources; rejects when it was not published. */
  trigger(checkpoint: Checkpoint): Promise<void> {
    const { init } = checkpoint;
    return this.deps.bus.publishTrigger({
      jobId: this.deps.jobId,
      checkpointId: checkpoint.id,
      epoch: init.epoch,
      snapshotType: init.snapshotType,
      triggeredAtMs: init.triggeredAtMs,
      deadlineMs: init.deadlineMs,
      term: this.deps.term,
    });
  }

  /** Tells the tasks a checkpoint was committed (sinks commit their output); a failure is logged. */
  complete(checkpoint: Checkpoint, completedAtMs: number): void {
    this.logFailure(
      this.deps.bus.publishComplete({
        jobId: this.deps.jobId,
        checkpointId: checkpoint.id,
        epoch: checkpoint.init.epoch,
        completedAtMs,
        term: this.deps.term,
      }),
    );
  }

  /** Tells the tasks a checkpoint was aborted, and why; a failure is logged. */
  abort(checkpoint: Checkpoint, reason: AbortCause, message: string): void {
    this.logFailure(
      this.deps.bus.publishAbort({
        jobId: this.deps.jobId,
        checkpointId: checkpoint.id,
        epoch: checkpoint.init.epoch,
        reason,
        message,
        term: this.deps.term,
      }),
    );
  }

  /** Tells the tasks to restore `checkpointId` in `epoch`; rejects when it was not published. */
  recover(epoch: number, checkpointId: number): Promise<void> {
    return this.deps.bus.publishRecover({ jobId: this.deps.jobId, epoch, checkpointId, term: this.deps.term });
  }

  private logFailure(sent: Promise<void>): void {
    sent.catch((err: unknown) => this.deps.log.error({ err }, 'broadcast failed'));
  }
}
