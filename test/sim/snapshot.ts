/**
 * The deterministic snapshots a simulated task acknowledges: the same job,
 * task, checkpoint and state size always give the same handle, checksum
 * and positions, so tests can predict and compare manifests.
 */
import { createHash } from 'node:crypto';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';

/** What a simulated snapshot depends on. */
export interface SimulatedSnapshotInput {
  jobId: string;
  taskId: string;
  checkpointId: number;
  /** The simulated size of the task's state. */
  stateBytes: number;
  /** Sources record a position in their input. */
  source: boolean;
  /** Measured alignment time, reported in the metrics. */
  alignmentMs: number;
}

/** Offset a source records per checkpoint: checkpoint n is at n × 100. */
export const SIM_RECORDS_PER_CHECKPOINT = 100;

/** The URI of a simulated snapshot: `sim://<job>/<task>/<checkpoint>`. */
export function simulatedUri(jobId: string, taskId: string, checkpointId: number): string {
  return `sim://${jobId}/${taskId}/${checkpointId}`;
}

/** The input a simulated source reads: `stream-<task>`. */
export function simulatedInput(taskId: string): string {
  return `stream-${taskId}`;
}

/** A complete, deterministic `TaskSnapshot` for one task and checkpoint. */
export function simulatedSnapshot(input: SimulatedSnapshotInput): TaskSnapshot__Output {
  const { jobId, taskId, checkpointId, stateBytes } = input;
  const digest = createHash('sha256').update(`${jobId}/${taskId}/${checkpointId}/${stateBytes}`).digest('hex');
  return {
    taskId,
    state: {
      uri: simulatedUri(jobId, taskId, checkpointId),
      sizeBytes: stateBytes,
      checksum: `sha256:${digest}`,
      shared: [],
      compression: 'STATE_COMPRESSION_UNSPECIFIED',
      rawSizeBytes: 0,
      inFlightRecords: false,
    },
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    positions: input.source
      ? [{ input: simulatedInput(taskId), offset: checkpointId * SIM_RECORDS_PER_CHECKPOINT }]
      : [],
    metrics: {
      alignmentMs: input.alignmentMs,
      syncMs: 1,
      asyncMs: 2,
      stateSizeBytes: stateBytes,
      persistedBytes: stateBytes,
      inFlightBytes: 0,
      processedRecords: SIM_RECORDS_PER_CHECKPOINT,
      startDelayMs: 0,
    },
  };
}
