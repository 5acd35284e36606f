/**
 * The encodings the coordinator builds piecewise at scale are the whole
 * message's encodings: the manifest joined from per-task encodings, and
 * the statistics record joined from per-record encodings.
 */
import test from 'ava';
import { emptyStatistics } from '../../src/core/checkpoint-stats.js';
import type { Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { StoredCheckpointStatistics__Output } from '../../src/gen/ckpt/v1/StoredCheckpointStatistics.js';
import { codec } from '../../src/proto/index.js';
import { encodeManifest, prepareTaskSnapshots } from '../../src/store/manifest-encoding.js';
import { encodeStatistics } from '../../src/store/statistics.js';
import { simulatedSnapshot } from '../sim/index.js';

const manifestCodec = codec<Manifest, unknown>('Manifest');

function manifest(tasks: number, fromSavepoint?: Manifest['fromSavepoint']): Manifest {
  return {
    jobId: 'job',
    checkpointId: 7,
    epoch: 2,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: 1_700_000_000_000,
    completedAtMs: 1_700_000_000_123,
    tasks: Array.from({ length: tasks }, (_, i) => {
      const s = simulatedSnapshot({
        jobId: 'job',
        taskId: `t${i}`,
        checkpointId: 7,
        stateBytes: 100 * i,
        source: i % 2 === 0,
        alignmentMs: i,
      });
      // Large entries need lengths of more than one varint byte.
      return i === 3
        ? {
            ...s,
            state: {
              ...s.state!,
              shared: Array.from({ length: 40 }, (_, k) => ({
                uri: `file:///s/${k}`,
                sizeBytes: k,
                checksum: s.state!.checksum,
                shared: [],
              })),
            },
          }
        : s;
    }),
    fromSavepoint: fromSavepoint ?? null,
  };
}

test('a manifest joined from per-task encodings is the codec encoding, byte for byte', (t) => {
  for (const m of [manifest(0), manifest(1), manifest(50), manifest(5, { jobId: 'other', checkpointId: 3 })]) {
    const expected = manifestCodec.encode(m);
    t.deepEqual(Buffer.from(encodeManifest(m)), Buffer.from(expected));
    prepareTaskSnapshots(m.tasks ?? []);
    t.deepEqual(Buffer.from(encodeManifest(m)), Buffer.from(expected), 'also from prepared encodings');
  }
});

test('a statistics record within its budget is the codec encoding, and its history decodes in order', (t) => {
  const statsCodec = codec<StoredCheckpointStatistics__Output, StoredCheckpointStatistics__Output>(
    'StoredCheckpointStatistics',
  );
  const summary = (id: number) => ({ ...emptySummary(), checkpointId: id });
  const stats: StoredCheckpointStatistics__Output = {
    ...emptyStatistics(5),
    completed: 3,
    history: [3, 2, 1].map((id) => ({
      summary: summary(id),
      tasks: [{ taskId: `t${id}`, acknowledgedAtMs: id, metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' as const }],
    })),
  };
  const bytes = encodeStatistics(stats, 1 << 20) as Uint8Array;
  const decoded = statsCodec.decode(bytes);
  t.deepEqual(decoded, statsCodec.decode(statsCodec.encode(stats)));
  t.deepEqual(
    decoded.history.map((r) => r.summary?.checkpointId),
    [3, 2, 1],
  );
  // A record of 100,000 tasks is kept without its figures rather than encoded whole.
  const big = {
    ...stats,
    history: [
      {
        summary: summary(4),
        tasks: Array.from({ length: 100_000 }, (_, i) => ({
          taskId: `t${i}`,
          acknowledgedAtMs: 1,
          metrics: null,
          snapshotType: 'SNAPSHOT_TYPE_FULL' as const,
        })),
      },
      ...stats.history,
    ],
  };
  const trimmed = statsCodec.decode(encodeStatistics(big, 24 * 1024) as Uint8Array);
  t.is(trimmed.history.length, 4);
  t.is(trimmed.history[0]?.tasks.length, 0);
  t.is(trimmed.history[1]?.tasks.length, 1);
});

function emptySummary() {
  return {
    jobId: 'job',
    checkpointId: 0,
    epoch: 1,
    state: 'CHECKPOINT_STATE_COMPLETED' as const,
    abortReason: 'ABORT_REASON_UNSPECIFIED' as const,
    abortMessage: '',
    snapshotType: 'SNAPSHOT_TYPE_FULL' as const,
    manual: false,
    triggeredAtMs: 1000,
    finishedAtMs: 1050,
    totalTasks: 1,
    acknowledgedTasks: 1,
    stateSizeBytes: 1,
    persistedBytes: 1,
    maxAlignmentMs: 0,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 1040,
  };
}
