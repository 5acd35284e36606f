/**
 * What the `orphans` benchmark runs: the coordinator's cleanup options,
 * the job's checkpoint policy, the faults and the state, shared by the
 * scenario and the conditions of its rows.
 */
import type { UploadFaults } from './orphans-worker-child.js';

/** The coordinator's cleanup options, short enough for a benchmark. */
export const CLEANUP = { orphanGraceMs: 2000, stateSweepIntervalMs: 1000 };
/**
 * Periodic checkpoints; a stalled upload outlasts the timeout but not the
 * snapshot timeout (no recovery). Pieces are stored uncompressed: the
 * padded values compress to a few KiB, and a kill must land inside an
 * upload of several chunks.
 */
export const POLICY = {
  compression: 'STATE_COMPRESSION_NONE' as const,
  intervalMs: 300,
  timeoutMs: 1500,
  snapshotTimeoutMs: 20_000,
  retained: 2,
  tolerableFailures: -1,
  fullEvery: 4,
  maxConcurrent: 1,
};
/** One sink declines every 5th checkpoint, the other stalls every 7th upload past the timeout. */
export const FAULTS: UploadFaults = { declineEvery: 5, stallEvery: 7, stallMs: 2500 };
/** Worker processes, each running a source and a sink. */
export const WORKERS = 2;
/** Sink state: keys × padded values, about 1 MiB per sink, so a full piece is several 128 KiB chunks. */
export const SINK = { keys: 4000, valueBytes: 256, recordsPerTick: 10, tickMs: 20 };
