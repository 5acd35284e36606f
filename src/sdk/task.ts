/**
 * The task API of the worker SDK: what a user implements, and what the
 * runtime hands to it. Barriers, epochs and snapshots of keyed state are
 * handled by the runtime; a task only processes records and, if it keeps
 * state outside `ctx.state`, snapshots and restores it.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from '../log/index.js';
import type { EmitOptions } from './router.js';
import type { KeyedState } from './state/index.js';

/** One record a task receives. */
export interface DataRecord {
  /** The payload, in the producer's own encoding. */
  readonly value: Uint8Array;
  /** The partitioning key the producer gave, if any. */
  readonly key: string | undefined;
  /** The task that produced the record. */
  readonly from: string;
  /** The payload decoded as UTF-8. */
  text(): string;
}

/** A recorded read position in one input of a source task. */
export interface SourcePosition {
  /** The input, e.g. `<stream>/<subject>` for a JetStream source. */
  input: string;
  /** The last message of the input included in the snapshot; reading resumes after it. */
  offset: number;
}

/** What a task sees while it runs in one epoch. */
export interface TaskContext {
  readonly taskId: string;
  readonly jobId: string;
  /** The epoch the task runs in; a restore starts a new context. */
  readonly epoch: number;
  /**
   * The task's keyed state. Unless the task implements `snapshot` and
   * `restore`, the runtime snapshots and restores it.
   */
  readonly state: KeyedState;
  /** The downstream tasks, sorted. */
  readonly outputs: readonly string[];
  /** Aborted when this context's epoch ends for the task (recovery, failure, stop). */
  readonly signal: AbortSignal;
  /** The worker's NATS connection, for sources and sinks. */
  readonly nats: NatsConnection;
  readonly logger: Logger;
  /**
   * Sends a record downstream: to the task `to`, to one task chosen by a
   * stable hash of `key`, or to every downstream task. A record emitted by a
   * context whose epoch has ended is dropped.
   */
  emit(value: string | Uint8Array, options?: EmitOptions): void;
  /**
   * Fails the task from work it runs outside the runtime's calls (a
   * publication in the background, say), as a call that throws does: the
   * job recovers. Ignored once the context's epoch has ended.
   */
  fail(err: unknown): void;
}

/** The context of a snapshot: also names the checkpoint. */
export interface SnapshotContext extends TaskContext {
  readonly checkpointId: number;
}

/** The optional checkpoint hooks every kind of task may implement. */
export interface TaskHooks {
  /**
   * Serialises the task's state for checkpoint `ctx.checkpointId`. Runs
   * while the task processes nothing else (the synchronous part); the
   * returned bytes must not change afterwards. Empty bytes mean no state:
   * nothing is stored. Default: `ctx.state` encoded, nothing while it is
   * empty. Throwing a `CheckpointDeclinedError` declines the checkpoint
   * (it aborts as DECLINED) and the task goes on; any other throw also
   * fails the task.
   */
  snapshot?(ctx: SnapshotContext): Uint8Array | Promise<Uint8Array>;
  /**
   * Restores the state from snapshot bytes, or from nothing (`undefined`) when
   * the job starts without a checkpoint or the snapshot was empty. Default:
   * `ctx.state` decoded.
   */
  restore?(bytes: Uint8Array | undefined, ctx: TaskContext): void | Promise<void>;
  /** Checkpoint `checkpointId` is committed. A throw fails the task. */
  onCheckpointComplete?(checkpointId: number, ctx: TaskContext): void | Promise<void>;
  /** Checkpoint `checkpointId` will never complete. A throw fails the task. */
  onCheckpointAbort?(checkpointId: number, ctx: TaskContext): void | Promise<void>;
}

/**
 * A task that processes records from its inputs. Records of one task are
 * processed one at a time, in order per input; a slow `process` holds back
 * only its own task. A throw fails the task and rolls the job back.
 */
export interface Task extends TaskHooks {
  process(record: DataRecord, ctx: TaskContext): void | Promise<void>;
}

/** One message a source read, with its position. */
export interface SourceMessage<M = unknown> {
  /** The input it came from (the `input` of its `SourcePosition`). */
  input: string;
  /** Its position in the input; positions of one input increase. */
  offset: number;
  value: M;
}

/**
 * A task without inputs that reads an external input. The runtime calls
 * `read` once the job starts in an epoch, handles the messages one at a
 * time (snapshots fall between two messages), and records the offset of the
 * last handled message of each input in every snapshot.
 */
export interface SourceTask<M = unknown> extends TaskHooks {
  /**
   * Reads messages after `positions` (empty: from the beginning) until
   * `ctx.signal` aborts. Ending the iteration ends the source.
   */
  read(positions: readonly SourcePosition[], ctx: TaskContext): AsyncIterable<SourceMessage<M>>;
  /** Handles one message, typically by calling `ctx.emit`. A throw fails the task. */
  handle(message: SourceMessage<M>, ctx: TaskContext): void | Promise<void>;
}

/** Any task the worker runs. */
export type AnyTask = Task | SourceTask<unknown>;

/** True when `task` is a `SourceTask`. */
export function isSourceTask(task: AnyTask): task is SourceTask<unknown> {
  return typeof (task as Partial<SourceTask>).read === 'function';
}
