/**
 * The JSON of `/api/v1/...`, shaped after Flink's `/jobs/:id/checkpoints`
 * REST family (snake_case, durations in ms, sizes in bytes, timestamps in
 * ms since the epoch) and made from the messages of the `CheckpointQuery`
 * service, so that the dashboard shows what gRPC clients see.
 */
import { CkptError } from '../core/errors.js';
import { resolvePolicy } from '../core/policy.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { RestoreRecord__Output } from '../gen/ckpt/v1/RestoreRecord.js';
import type { StatisticsDistribution__Output } from '../gen/ckpt/v1/StatisticsDistribution.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';

type Json = Record<string, unknown>;

/** `PREFIX_VALUE` → `VALUE`; the unspecified value → null. */
function enumName(value: string, prefix: string): string | null {
  const name = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  return name === 'UNSPECIFIED' ? null : name;
}

const STATUS = {
  CHECKPOINT_STATE_PENDING: 'IN_PROGRESS',
  CHECKPOINT_STATE_COMPLETED: 'COMPLETED',
  CHECKPOINT_STATE_ABORTED: 'FAILED',
} as const;

/** One checkpoint as the history lists it (Flink's checkpoint statistics entry). */
export function entryJson(s: CheckpointSummary__Output): Json {
  const finished = s.state !== 'CHECKPOINT_STATE_PENDING' && s.finishedAtMs > 0;
  const failed = s.state === 'CHECKPOINT_STATE_ABORTED';
  return {
    id: s.checkpointId,
    status: STATUS[s.state as keyof typeof STATUS] ?? 'UNKNOWN',
    checkpoint_type: enumName(s.snapshotType, 'SNAPSHOT_TYPE_'),
    is_savepoint: s.snapshotType === 'SNAPSHOT_TYPE_SAVEPOINT',
    manual: s.manual,
    epoch: s.epoch,
    trigger_timestamp: s.triggeredAtMs,
    latest_ack_timestamp: s.latestAcknowledgedAtMs,
    end_to_end_duration: finished && !failed ? Math.max(0, s.finishedAtMs - s.triggeredAtMs) : 0,
    state_size: s.stateSizeBytes,
    checkpointed_size: s.persistedBytes,
    num_subtasks: s.totalTasks,
    num_acknowledged_subtasks: s.acknowledgedTasks,
    failure_timestamp: failed ? s.finishedAtMs : 0,
    failure_message: s.abortMessage,
    abort_reason: enumName(s.abortReason, 'ABORT_REASON_') ?? '',
    max_alignment: s.maxAlignmentMs,
    max_snapshot: s.maxSnapshotMs,
    manifest_bytes: s.manifestBytes,
  };
}

function restoredJson(r: RestoreRecord__Output | null): Json | null {
  return r === null ? null : { epoch: r.epoch, checkpoint_id: r.checkpointId, restore_timestamp: r.restoredAtMs };
}

function countsJson(stats: CheckpointStatistics__Output | null): Json | null {
  const c = stats?.counts;
  if (c === null || c === undefined) return null;
  return {
    total: c.triggered,
    in_progress: c.inProgress,
    completed: c.completed,
    failed: c.failed,
    restored: c.restored,
  };
}

function latestJson(stats: CheckpointStatistics__Output | null): Json {
  return {
    completed: stats?.latestCompleted ? entryJson(stats.latestCompleted) : null,
    savepoint: null,
    failed: stats?.latestFailed ? entryJson(stats.latestFailed) : null,
    restored: restoredJson(stats?.latestRestored ?? null),
  };
}

/** A job as the jobs list shows it; `stats` null when the job has none (quarantined). */
export function jobJson(info: JobInfo__Output, stats: CheckpointStatistics__Output | null): Json {
  return {
    id: info.spec?.jobId ?? '',
    state: enumName(info.state, 'JOB_STATE_'),
    epoch: info.epoch,
    attempt: enumName(info.attempt, 'JOB_ATTEMPT_'),
    tasks: info.spec?.tasks.length ?? 0,
    ready_tasks: info.readyTasks,
    attached_tasks: info.attachedTasks,
    checkpointing: enumName(info.checkpointing, 'JOB_CHECKPOINTING_'),
    latest_checkpoint_id: info.latestCheckpointId,
    created_at: info.createdAtMs,
    interval_ms: info.intervalMs,
    interval_reason: info.intervalReason,
    quarantine_reason: info.quarantineReason,
    counts: countsJson(stats),
    latest: latestJson(stats),
  };
}

/** A job with its spec's tasks and labels. */
export function jobDetailsJson(info: JobInfo__Output, stats: CheckpointStatistics__Output | null): Json {
  return {
    ...jobJson(info, stats),
    spec: {
      labels: info.spec?.labels ?? {},
      tasks: (info.spec?.tasks ?? []).map((t) => ({ task_id: t.taskId, inputs: t.inputs, labels: t.labels })),
    },
  };
}

function distributionJson(d: StatisticsDistribution__Output | null): Json {
  const v = d ?? { count: 0, min: 0, max: 0, avg: 0, p50: 0, p90: 0, p99: 0 };
  return { count: v.count, min: v.min, max: v.max, avg: v.avg, p50: v.p50, p90: v.p90, p99: v.p99 };
}

/** `/jobs/:id/checkpoints`: counts, summary, latest and history. */
export function statisticsJson(stats: CheckpointStatistics__Output): Json {
  return {
    counts: countsJson(stats),
    summary: {
      end_to_end_duration: distributionJson(stats.durationMs),
      state_size: distributionJson(stats.stateSizeBytes),
      checkpointed_size: distributionJson(stats.persistedBytes),
      alignment_duration: distributionJson(stats.alignmentMs),
    },
    latest: latestJson(stats),
    history: stats.history.map(entryJson),
    counting_since: stats.countingSinceMs,
  };
}

/**
 * `/jobs/:id/checkpoints/config`: the job's policy with its defaults, and
 * the interval in force. A stored policy this process cannot read (outside
 * its limits) is shown as stored.
 */
export function configJson(info: JobInfo__Output): Json {
  const stored = info.spec?.policy ?? null;
  let p;
  try {
    p = resolvePolicy(stored, Number.MAX_SAFE_INTEGER);
  } catch (err) {
    return { stored_policy: stored, problem: CkptError.from(err).message };
  }
  return {
    mode: enumName(p.mode, 'CHECKPOINT_MODE_'),
    interval: p.intervalMs,
    interval_in_force: info.intervalMs,
    interval_reason: info.intervalReason,
    timeout: p.timeoutMs,
    min_pause: p.minPauseMs,
    max_concurrent: p.maxConcurrent,
    tolerable_failed_checkpoints: p.tolerableFailures,
    retained: p.retained,
    full_every: p.fullEvery,
    compression: enumName(p.compression, 'STATE_COMPRESSION_'),
    snapshot_timeout: p.snapshotTimeoutMs,
    task_stall_timeout: p.taskStallTimeoutMs,
    aligned_checkpoint_timeout: p.alignedCheckpointTimeoutMs,
    adaptive:
      p.adaptive === null
        ? null
        : {
            min_interval: p.adaptive.minIntervalMs,
            max_interval: p.adaptive.maxIntervalMs,
            budget_permille: p.adaptive.budgetPermille,
            replay_target: p.adaptive.replayTargetMs,
          },
  };
}

/** One task's figures for one checkpoint. */
export function taskJson(t: TaskCheckpointStatistics__Output, triggeredAtMs: number): Json {
  const m = t.metrics;
  const acked = t.acknowledgedAtMs > 0 || m !== null;
  return {
    task_id: t.taskId,
    status: acked ? 'ACKNOWLEDGED' : 'PENDING',
    ack_timestamp: t.acknowledgedAtMs,
    end_to_end_duration: t.acknowledgedAtMs > 0 ? Math.max(0, t.acknowledgedAtMs - triggeredAtMs) : 0,
    start_delay: m?.startDelayMs ?? 0,
    alignment_duration: m?.alignmentMs ?? 0,
    sync_duration: m?.syncMs ?? 0,
    async_duration: m?.asyncMs ?? 0,
    state_size: m?.stateSizeBytes ?? 0,
    checkpointed_size: m?.persistedBytes ?? 0,
    in_flight_size: m?.inFlightBytes ?? 0,
    processed_records: m?.processedRecords ?? 0,
    snapshot_type: enumName(t.snapshotType, 'SNAPSHOT_TYPE_'),
  };
}

/** `/jobs/:id/checkpoints/details/:cid`: the entry and its tasks. */
export function detailsJson(summary: CheckpointSummary__Output, tasks: TaskCheckpointStatistics__Output[]): Json {
  return {
    ...entryJson(summary),
    manifest_parts: summary.manifestParts,
    tasks: tasks.map((t) => taskJson(t, summary.triggeredAtMs)),
  };
}
