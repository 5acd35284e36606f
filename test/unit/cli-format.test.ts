/**
 * The CLI's text output: units, the checkpoint table (also with the latest
 * acknowledgement time that newer coordinators send), and details.
 */
import test from 'ava';
import { bytes, checkpointDetails, checkpointsTable, duration } from '../../src/cli/format.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { tableRows } from '../helpers/cli.js';

const T0 = Date.UTC(2025, 0, 31, 12, 0, 5, 250);

function summary(overrides: Partial<CheckpointSummary__Output> = {}): CheckpointSummary__Output {
  return {
    jobId: 'orders',
    checkpointId: 7,
    epoch: 2,
    state: 'CHECKPOINT_STATE_COMPLETED',
    abortReason: 'ABORT_REASON_UNSPECIFIED',
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_INCREMENTAL',
    manual: false,
    triggeredAtMs: T0,
    finishedAtMs: T0 + 1500,
    totalTasks: 8,
    acknowledgedTasks: 8,
    stateSizeBytes: 3 * 1024 * 1024 + 512 * 1024,
    persistedBytes: 2048,
    maxAlignmentMs: 12,
    maxSnapshotMs: 340,
    manifestBytes: 900,
    manifestParts: 0,
    latestAcknowledgedAtMs: 0,
    ...overrides,
  };
}

test('sizes and durations read in human units', (t) => {
  t.deepEqual([0, 1023, 1536, 5 * 1024 * 1024, 3 * 1024 ** 3].map(bytes), [
    '0 B',
    '1023 B',
    '1.5 KiB',
    '5.0 MiB',
    '3.0 GiB',
  ]);
  t.deepEqual([0, 999, 1500, 119_700, 3_600_000].map(duration), ['0 ms', '999 ms', '1.5 s', '2 min 0 s', '60 min 0 s']);
});

test('the checkpoint table shows every column aligned, and - where a value is not known yet', (t) => {
  const withAck = { ...summary(), latestAcknowledgedAtMs: T0 + 1340 };
  const pending = summary({
    checkpointId: 8,
    state: 'CHECKPOINT_STATE_PENDING',
    finishedAtMs: 0,
    acknowledgedTasks: 3,
    manual: true,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
  });
  const aborted = summary({
    checkpointId: 6,
    state: 'CHECKPOINT_STATE_ABORTED',
    abortReason: 'ABORT_REASON_TIMEOUT',
    abortMessage: 'task t3 did not answer',
  });
  t.deepEqual(tableRows(checkpointsTable([pending, withAck, aborted])), [
    {
      ID: '8',
      STATUS: 'PENDING',
      TYPE: 'FULL (manual)',
      ACKED: '3/8',
      TRIGGERED: '2025-01-31T12:00:05Z',
      'LATEST ACK': '-',
      DURATION: '-',
      PERSISTED: '2.0 KiB',
      'STATE SIZE': '3.5 MiB',
      REASON: '',
    },
    {
      ID: '7',
      STATUS: 'COMPLETED',
      TYPE: 'INCREMENTAL',
      ACKED: '8/8',
      TRIGGERED: '2025-01-31T12:00:05Z',
      'LATEST ACK': '+1.3 s',
      DURATION: '1.5 s',
      PERSISTED: '2.0 KiB',
      'STATE SIZE': '3.5 MiB',
      REASON: '',
    },
    {
      ID: '6',
      STATUS: 'ABORTED',
      TYPE: 'INCREMENTAL',
      ACKED: '8/8',
      TRIGGERED: '2025-01-31T12:00:05Z',
      'LATEST ACK': '-',
      DURATION: '1.5 s',
      PERSISTED: '2.0 KiB',
      'STATE SIZE': '3.5 MiB',
      REASON: 'TIMEOUT',
    },
  ]);
});

test('checkpoint details add the epoch, manifest, slowest task times and why it aborted', (t) => {
  const aborted = summary({
    state: 'CHECKPOINT_STATE_ABORTED',
    abortReason: 'ABORT_REASON_TIMEOUT',
    abortMessage: 'task t3 did not answer',
    manifestBytes: 0,
  });
  const lines = checkpointDetails({ checkpoint: aborted, manifest: null, tasks: [] }).split('\n');
  t.deepEqual(lines.slice(2), [
    'epoch: 2  manifest: -  max alignment: 12 ms  max snapshot: 340 ms',
    'why: TIMEOUT: task t3 did not answer',
  ]);
  const parts = checkpointDetails({
    checkpoint: summary({ manifestBytes: 3 * 1024 * 1024, manifestParts: 3 }),
    manifest: null,
    tasks: [],
  });
  t.regex(parts, /^epoch: 2 {2}manifest: 3\.0 MiB in 3 parts {2}/m);
});
