/**
 * Runs one task: a single sequential loop (`TaskLoop`) that processes its
 * records (or, for a source, the messages it reads), aligns barriers,
 * snapshots, forwards barriers, and runs the checkpoint hooks. One loop per
 * task, so a slow task holds back only itself.
 *
 * The loop awaits only what returns a promise: records whose `process` (or
 * messages whose `handle`) returns nothing run back to back in one
 * synchronous batch, typically one NATS delivery, so that their emitted
 * records leave in one write.
 *
 * What the loop takes next from its inputs, paused while an output is over
 * its flow-control window, is `TaskIntake`'s; the timer of aligned
 * checkpoints that wait too long is `AlignmentTimeouts` (both built in
 * `task-inputs.ts`). The aligner's checkpoint actions go to
 * `onCheckpointAction`; the runner's options are in `runner-options.ts`.
 *
 * Phases: `idle` until the first restore, `restoring`, `active`, `halted`
 * (a recovery stopped it; a restore follows), `failed` (it threw; the job
 * rolls back), `closed`.
 */
import { CkptError } from '../core/errors.js';
import { onCheckpointAction, type CheckpointActionTarget } from './checkpoint-actions.js';
import type { SnapshotType } from '../gen/ckpt/v1/SnapshotType.js';
import type { TaskHealth } from '../gen/ckpt/v1/TaskHealth.js';
import type { AlignAction, InputAligner } from './alignment.js';
import type { AlignmentTimeouts } from './alignment-timeouts.js';
import { createTaskContext, type ContextCell } from './context.js';
import { Fifo } from './fifo.js';
import type { ReaderCredits } from './flow-control.js';
import { isPromiseLike } from './promise-like.js';
import type { SourceLane } from './source-lane.js';
import { dataRecord } from './record.js';
import type { EmitOptions } from './router.js';
import type { TaskIntake } from './task-intake.js';
import { taskInputs } from './task-inputs.js';
import { TaskOutput } from './task-output.js';
import { IDLE, TaskLoop } from './task-loop.js';
import type { RestoreRequest, RunnerOptions } from './runner-options.js';
import { Snapshotter, type SnapshotPoint } from './snapshotter.js';
import type { TaskCounts } from './worker-metrics.js';
import { isSourceTask, type DataRecord, type SourceMessage, type SourcePosition } from './task.js';

/** Where a task runner is in its life. */
export type RunnerPhase = 'idle' | 'restoring' | 'active' | 'halted' | 'failed' | 'closed';

/** Control work: runs synchronously unless it returns a promise, which the loop waits for. */
type Work = () => unknown;

/** The runtime of one task. */
export class TaskRunner {
  readonly taskId: string;
  readonly isSource: boolean;
  readonly #o: RunnerOptions;
  readonly #output: TaskOutput;
  readonly #aligner: InputAligner<DataRecord> | undefined;
  readonly #control = new Fifo<Work>();
  readonly #sourceLane: SourceLane;
  readonly #snapshots: Snapshotter;
  /** Where the aligner's checkpoint actions go. */
  readonly #checkpoints: CheckpointActionTarget;
  readonly #loop: TaskLoop;
  readonly #counts: TaskCounts | undefined;
  /** What the loop takes next; nothing while an output is over its window. */
  readonly #intake: TaskIntake;
  readonly #timeouts: AlignmentTimeouts;
  readonly #credits: ReaderCredits | undefined;
  #phase: RunnerPhase = 'idle';
  #generation = 0;
  #epoch = 0;
  #epochAbort = new AbortController();
  #cell: ContextCell | undefined;
  #positions = new Map<string, number>();
  #processed = 0;

  /** Starts the task's loop; it waits for a restore. */
  constructor(options: RunnerOptions) {
    this.#o = options;
    this.taskId = options.taskId;
    this.isSource = isSourceTask(options.task);
    this.#output = new TaskOutput(options.taskId, options.outputs, options.plane, options.logger, options.counts);
    this.#counts = options.counts;
    const inputs = taskInputs(options, () => this.#wake());
    this.#credits = inputs.credits;
    this.#aligner = inputs.aligner;
    this.#sourceLane = inputs.sourceLane;
    this.#timeouts = inputs.timeouts;
    this.#intake = inputs.intake;
    this.#snapshots = new Snapshotter({
      ...options,
      isCurrent: (generation) => generation === this.#generation,
    });
    this.#checkpoints = {
      snapshots: this.#snapshots,
      point: (checkpointId, startedAtMs) => this.#point(checkpointId, startedAtMs),
      decline: (checkpointId, message) =>
        options.onResult(checkpointId, this.#epoch, { kind: 'decline', taskId: this.taskId, message }),
      logger: options.logger,
    };
    this.#loop = new TaskLoop({
      step: () => this.#step(),
      closed: () => this.#phase === 'closed',
      generation: () => this.#generation,
      onFailure: (err, generation) => this.#fail(err, generation),
      abandonCallAfterMs: options.abandonCallAfterMs,
      logger: options.logger,
    });
  }

  /**
   * The task's liveness at `now` (`performance.now()`): how long the loop
   * has waited for the current call of the task's code, and how long its
   * oldest snapshot in progress has run.
   */
  health(now: number): TaskHealth {
    const snapshot = this.#snapshots.inProgress();
    return {
      taskId: this.taskId,
      busyMs: this.#loop.busySince === undefined ? 0 : Math.round(now - this.#loop.busySince),
      snapshotMs: snapshot === undefined ? 0 : Math.round(now - snapshot.since),
      snapshotCheckpointId: snapshot?.checkpointId ?? 0,
    };
  }

  /** The runner's phase. */
  get phase(): RunnerPhase {
    return this.#phase;
  }

  /** The epoch the task runs (or restores) in. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The task's context in the current epoch, once restored. */
  get context(): ContextCell['context'] | undefined {
    return this.#cell?.context;
  }

  /** Queues a record of `input` sent in `epoch`; dropped unless the task runs or restores in `epoch`. */
  offerRecord(epoch: number, input: string, record: DataRecord): void {
    if (!this.#accepting(epoch)) return;
    if (this.#counts !== undefined) this.#counts.recordsReceived += 1;
    this.#aligner?.offer(input, { kind: 'record', record });
    this.#wake();
  }

  /** Queues barrier `checkpointId` of `input` sent in `epoch`. */
  offerBarrier(epoch: number, input: string, checkpointId: number, snapshotType: SnapshotType): void {
    if (!this.#accepting(epoch)) return;
    this.#snapshots.noteType(checkpointId, snapshotType);
    const savepoint = snapshotType === 'SNAPSHOT_TYPE_SAVEPOINT';
    this.#aligner?.offer(input, { kind: 'barrier', checkpointId, savepoint });
    this.#timeouts.arm();
    this.#wake();
  }

  /**
   * A trigger for a source: snapshot between two messages. Returns false,
   * doing nothing, when the task does not run in `epoch`. Which triggers a
   * source takes (each above the last it took) is its worker's decision.
   */
  trigger(epoch: number, checkpointId: number, snapshotType: SnapshotType): boolean {
    if (this.#phase !== 'active' || epoch !== this.#epoch) return false;
    this.#snapshots.noteType(checkpointId, snapshotType);
    // A source starts the checkpoint when its loop takes the trigger.
    this.#push(() => this.#snapshots.snapshot(this.#point(checkpointId, Date.now()), 0));
    return true;
  }

  /** Checkpoint `checkpointId` is committed: runs the task's hook in turn. */
  complete(checkpointId: number): void {
    this.#snapshots.completed(checkpointId);
    const task = this.#o.task;
    if (this.#phase !== 'active' || task.onCheckpointComplete === undefined) return;
    this.#push(() => task.onCheckpointComplete?.(checkpointId, this.#requireContext()));
  }

  /** Checkpoint `checkpointId` (or every one up to it with `upTo`) aborted. */
  abort(checkpointId: number, upTo: boolean): void {
    this.#aligner?.cancel(checkpointId, upTo);
    this.#snapshots.drop(checkpointId, upTo);
    const task = this.#o.task;
    if (this.#phase === 'active' && task.onCheckpointAbort !== undefined) {
      this.#push(() => task.onCheckpointAbort?.(checkpointId, this.#requireContext()));
    } else {
      this.#wake();
    }
  }

  /** Stops at once and drops everything queued (a recovery); a restore follows. */
  halt(phase: RunnerPhase = 'halted'): void {
    if (this.#phase === 'closed') return;
    this.#generation += 1;
    this.#epochAbort.abort(new CkptError('STALE_EPOCH', `task ${this.taskId} left epoch ${this.#epoch}`));
    this.#epochAbort = new AbortController();
    this.#control.clear();
    this.#aligner?.reset();
    this.#timeouts.clear();
    this.#credits?.stop();
    this.#sourceLane.stop();
    this.#snapshots.clear();
    this.#phase = phase;
    this.#loop.interrupt();
    this.#wake();
  }

  /**
   * Restores the task in `request.epoch`: waits for the work in progress of
   * the old epoch, fetches and verifies the state, restores it, and makes
   * the task active (a source reads only after `start`). Rejects when the
   * restore fails or a newer restore or halt supersedes it.
   */
  async restore(request: RestoreRequest): Promise<void> {
    if (this.#phase === 'closed') throw new CkptError('SHUTTING_DOWN', `task ${this.taskId} is closed`);
    this.halt('restoring');
    this.#epoch = request.epoch;
    const generation = this.#generation;
    await this.#loop.settleCurrent();
    const cell = this.#newContext(generation, request.epoch);
    const restoredPerInput = new Map<string, number>();
    const signal = AbortSignal.any([request.signal, cell.context.signal]);
    try {
      const unaligned = this.#o.mode === 'unaligned' && this.#aligner !== undefined;
      const inFlight = await this.#snapshots.restore(request, cell, { signal, unaligned }, () =>
        this.#assertCurrent(generation),
      );
      this.#assertCurrent(generation);
      // In-flight records of the restored snapshot are processed first, before anything new.
      for (const r of inFlight) {
        this.#aligner?.offer(r.from, { kind: 'record', record: dataRecord(r.value, r.from, r.key) });
        restoredPerInput.set(r.from, (restoredPerInput.get(r.from) ?? 0) + 1);
      }
    } catch (err) {
      if (generation === this.#generation) this.halt('failed');
      throw CkptError.from(err);
    }
    this.#cell = cell;
    this.#positions = new Map((request.snapshot?.positions ?? []).map((p) => [p.input, Number(p.offset)]));
    this.#processed = 0;
    this.#phase = 'active';
    this.#credits?.begin(request.epoch, restoredPerInput);
    this.#wake();
  }

  /** Sends the credits of the task's inputs that are due (see `ReaderCredits.tick`). */
  tickCredits(now: number): void {
    this.#credits?.tick(now);
  }

  /** An output that was over its window has room again: the task takes input. */
  unblocked(): void {
    this.#wake();
  }

  /** The job started in `epoch`: a source begins reading. */
  start(epoch: number): void {
    const task = this.#o.task;
    const context = this.#cell?.context;
    if (!isSourceTask(task) || context === undefined || this.#phase !== 'active' || epoch !== this.#epoch) return;
    const generation = this.#generation;
    this.#sourceLane.start(task, this.#positionList(), context, (err) => this.#fail(err, generation));
  }

  /** Waits until the snapshots being stored now are stored (or failed). */
  async settleUploads(): Promise<void> {
    await this.#snapshots.settled();
  }

  /** Stops the loop, aborts uploads, and waits for the work in progress. */
  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    this.halt('closed');
    await this.#loop.done;
    await this.#loop.settleCurrent();
    await this.settleUploads();
  }

  // --- the work -------------------------------------------------------------

  /** Does the next piece of work and returns its result, or `IDLE` when there is none. */
  #step(): unknown {
    if (this.#phase !== 'active') return IDLE;
    const control = this.#control.shift();
    if (control !== undefined) return control();
    const next = this.#intake.next();
    if (next === undefined) return IDLE;
    return next.kind === 'action' ? this.#onAction(next.action) : this.#handleSource(next.message);
  }

  #onAction(action: AlignAction<DataRecord>): unknown {
    if (action.kind !== 'process') return onCheckpointAction(action, this.#checkpoints);
    this.#processed += 1;
    if (this.#counts !== undefined) this.#counts.recordsIn += 1;
    const { record, input } = action;
    this.#credits?.processed(input);
    if (action.inFlightFor !== undefined) {
      this.#snapshots.recordInFlight(action.inFlightFor, { from: input, key: record.key, value: record.value });
    }
    const task = this.#o.task;
    return isSourceTask(task) ? undefined : task.process(record, this.#requireContext());
  }

  /** Handles one source message; its position counts once it is handled. */
  #handleSource(message: SourceMessage<unknown>): unknown {
    const task = this.#o.task;
    if (!isSourceTask(task)) return undefined;
    this.#processed += 1;
    if (this.#counts !== undefined) this.#counts.recordsIn += 1;
    const handled = task.handle(message, this.#requireContext());
    if (isPromiseLike(handled)) return handled.then(() => this.#positions.set(message.input, message.offset));
    this.#positions.set(message.input, message.offset);
    return undefined;
  }

  /** The task's position for a snapshot of `checkpointId` started at `startedAtMs`; resets the processed-records count. */
  #point(checkpointId: number, startedAtMs: number): SnapshotPoint {
    const processedRecords = this.#processed;
    this.#processed = 0;
    return {
      checkpointId,
      epoch: this.#epoch,
      generation: this.#generation,
      context: this.#requireContext(),
      processedRecords,
      startedAtMs,
      positions: this.#positionList(),
    };
  }

  #positionList(): SourcePosition[] {
    return [...this.#positions].map(([input, offset]) => ({ input, offset }));
  }

  #newContext(generation: number, epoch: number): ContextCell {
    return createTaskContext({
      taskId: this.taskId,
      jobId: this.#o.jobId,
      epoch,
      outputs: this.#output.targets,
      signal: this.#epochAbort.signal,
      nats: this.#o.nats,
      logger: this.#o.logger,
      emit: (value, options) => this.#emit(generation, epoch, value, options),
      fail: (err) => this.#fail(err, generation),
    });
  }

  #emit(generation: number, epoch: number, value: string | Uint8Array, options?: EmitOptions): void {
    if (generation === this.#generation) this.#output.emit(epoch, value, options);
  }

  #accepting(epoch: number): boolean {
    return (this.#phase === 'active' || this.#phase === 'restoring') && epoch === this.#epoch;
  }

  #push(work: Work): void {
    this.#control.push(work);
    this.#wake();
  }

  #wake(): void {
    this.#loop.wake();
  }

  #requireContext(): ContextCell['context'] {
    if (this.#cell === undefined) throw new CkptError('INTERNAL', `task ${this.taskId} has no context`);
    return this.#cell.context;
  }

  #assertCurrent(generation: number): void {
    if (generation !== this.#generation) {
      throw new CkptError('STALE_EPOCH', `restore of task ${this.taskId} superseded`, { taskId: this.taskId });
    }
  }

  #fail(err: unknown, generation: number): void {
    if (generation !== this.#generation || this.#phase === 'closed') return;
    const epoch = this.#epoch;
    this.halt('failed');
    const cause = err instanceof Error ? err.message : String(err);
    const error = new CkptError('INTERNAL', `task ${this.taskId} failed: ${cause}`, {
      taskId: this.taskId,
      epoch,
      cause: err,
    });
    this.#o.logger.warn({ err, epoch }, 'task failed');
    this.#o.onFailure(this.taskId, epoch, error);
  }
}
