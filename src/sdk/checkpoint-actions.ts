/**
 * What a task does with the checkpoint actions of its input aligner: a
 * checkpoint aligned (a snapshot taken or, unaligned, opened), the
 * in-flight records of an unaligned one, its end once every input
 * delivered the barrier, and a cancelled alignment, which the task
 * declines. Records to process stay with the task's runner.
 */
import type { Logger } from '../log/index.js';
import type { AlignAction } from './alignment.js';
import type { SnapshotPoint, Snapshotter } from './snapshotter.js';
import type { DataRecord } from './task.js';

/** An action of a task's aligner other than a record to process. */
export type CheckpointAction = Exclude<AlignAction<DataRecord>, { kind: 'process' }>;

/** What checkpoint actions work on: the task's snapshots and position. */
export interface CheckpointActionTarget {
  snapshots: Snapshotter;
  /** The task's position for a snapshot of `checkpointId` started at `startedAtMs`. */
  point(checkpointId: number, startedAtMs: number): SnapshotPoint;
  /** Declines `checkpointId` in the task's epoch with `message`. */
  decline(checkpointId: number, message: string): void;
  logger: Logger;
}

/** Carries out `action`; returns what the task's loop waits for, if anything. */
export function onCheckpointAction(action: CheckpointAction, target: CheckpointActionTarget): unknown {
  switch (action.kind) {
    case 'snapshot':
      return action.unaligned
        ? target.snapshots.open(target.point(action.checkpointId, action.startedAtMs))
        : target.snapshots.snapshot(target.point(action.checkpointId, action.startedAtMs), action.alignmentMs);
    case 'in-flight':
      for (const record of action.records) {
        target.snapshots.recordInFlight([action.checkpointId], {
          from: action.input,
          key: record.key,
          value: record.value,
        });
      }
      return undefined;
    case 'finish':
      target.snapshots.finish(action.checkpointId, action.alignmentMs);
      return undefined;
    case 'cancel':
      target.snapshots.drop(action.checkpointId);
      target.logger.debug({ checkpointId: action.checkpointId, reason: action.reason }, 'alignment cancelled');
      target.decline(action.checkpointId, `barrier alignment cancelled: ${action.reason}`);
      return undefined;
  }
}
