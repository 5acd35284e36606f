/**
 * The `TaskContext` objects the runtime hands to tasks: one per task and
 * epoch, so that a context outliving its epoch cannot emit into the next.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from '../log/index.js';
import type { EmitOptions } from './router.js';
import { KeyedState } from './state/index.js';
import type { SnapshotContext, TaskContext } from './task.js';

/** The fixed parts of a context. */
export interface ContextFields {
  taskId: string;
  jobId: string;
  epoch: number;
  outputs: readonly string[];
  signal: AbortSignal;
  nats: NatsConnection;
  logger: Logger;
  emit(value: string | Uint8Array, options?: EmitOptions): void;
  fail(err: unknown): void;
}

/** A context and the setter of its state (a default restore replaces it). */
export interface ContextCell {
  readonly context: TaskContext;
  setState(state: KeyedState): void;
}

/** A context with an empty keyed state. */
export function createTaskContext(fields: ContextFields): ContextCell {
  let state = new KeyedState();
  const context: TaskContext = Object.freeze({
    taskId: fields.taskId,
    jobId: fields.jobId,
    epoch: fields.epoch,
    outputs: fields.outputs,
    signal: fields.signal,
    nats: fields.nats,
    logger: fields.logger,
    get state(): KeyedState {
      return state;
    },
    emit: (value: string | Uint8Array, options?: EmitOptions) => fields.emit(value, options),
    fail: (err: unknown) => fields.fail(err),
  });
  return {
    context,
    setState: (next) => {
      state = next;
    },
  };
}

/** `context` for the snapshot of `checkpointId`. */
export function snapshotContext(context: TaskContext, checkpointId: number): SnapshotContext {
  return Object.freeze(
    Object.create(context, { checkpointId: { value: checkpointId, enumerable: true } }) as SnapshotContext,
  );
}
