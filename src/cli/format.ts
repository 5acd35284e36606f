/**
 * Plain-text tables for the CLI; `--json` prints the messages instead.
 */
import type { CollectGarbageResponse__Output } from '../gen/ckpt/v1/CollectGarbageResponse.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { GetCheckpointResponse__Output } from '../gen/ckpt/v1/GetCheckpointResponse.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { SavepointSummary__Output } from '../gen/ckpt/v1/SavepointSummary.js';

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Strips an enum's type prefix: CHECKPOINT_STATE_COMPLETED → COMPLETED. */
export function short(value: string, prefix: string): string {
  return value.startsWith(prefix) ? value.slice(prefix.length) : value;
}

/** Bytes in B, KiB, MiB, GiB. */
export function bytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB'];
  if (n < 1024) return `${n} B`;
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit] ?? ''}`;
}

/** A duration in ms, s or min. */
export function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** A wall-clock time to the second, in UTC: 2025-01-31T12:00:05Z. */
export function timestamp(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** One row per job; the restore point shows while recoveries restore from it. */
export function jobsTable(jobs: JobInfo__Output[]): string {
  return table(
    ['JOB', 'STATE', 'TASKS', 'ATTACHED', 'EPOCH', 'LATEST', 'CHECKPOINTING', 'RESTORE POINT'],
    jobs.map((j) => [
      j.spec?.jobId ?? '',
      short(j.state, 'JOB_STATE_'),
      String(j.spec?.tasks.length ?? 0),
      String(j.attachedTasks),
      String(j.epoch),
      String(j.latestCheckpointId || '-'),
      short(j.checkpointing, 'JOB_CHECKPOINTING_'),
      j.restorePoint === null ? '-' : String(j.restorePoint.checkpointId),
    ]),
  );
}

/**
 * One job: its row, then the interval between periodic checkpoints in force
 * and why (an adaptive policy moves it). A quarantined job has no interval.
 */
export function jobDetails(job: JobInfo__Output): string {
  const lines = [jobsTable([job])];
  if (job.intervalReason !== '') {
    lines.push(`interval: ${job.intervalMs === 0 ? 'off' : `${job.intervalMs} ms`}`, `why: ${job.intervalReason}`);
  }
  return lines.join('\n');
}

/** An abort reason without its prefix; empty for none. */
function abortReason(c: CheckpointSummary__Output): string {
  return c.abortReason === 'ABORT_REASON_UNSPECIFIED' ? '' : short(c.abortReason, 'ABORT_REASON_');
}

/**
 * One row per checkpoint, in the order given (the coordinator lists newest
 * first). The latest acknowledgement and the duration count from the trigger.
 */
export function checkpointsTable(checkpoints: CheckpointSummary__Output[]): string {
  return table(
    ['ID', 'STATUS', 'TYPE', 'ACKED', 'TRIGGERED', 'LATEST ACK', 'DURATION', 'PERSISTED', 'STATE SIZE', 'REASON'],
    checkpoints.map((c) => {
      const acked = c.latestAcknowledgedAtMs;
      return [
        String(c.checkpointId),
        short(c.state, 'CHECKPOINT_STATE_'),
        short(c.snapshotType, 'SNAPSHOT_TYPE_') + (c.manual ? ' (manual)' : ''),
        `${c.acknowledgedTasks}/${c.totalTasks}`,
        c.triggeredAtMs === 0 ? '-' : timestamp(c.triggeredAtMs),
        acked === 0 ? '-' : `+${duration(Math.max(0, acked - c.triggeredAtMs))}`,
        c.finishedAtMs === 0 ? '-' : duration(Math.max(0, c.finishedAtMs - c.triggeredAtMs)),
        bytes(c.persistedBytes),
        bytes(c.stateSizeBytes),
        abortReason(c),
      ];
    }),
  );
}

/** Why a checkpoint aborted: `DECLINED: task sink-0 declined …`; empty for none. */
function abortWhy(c: CheckpointSummary__Output): string {
  return `${abortReason(c)}${c.abortMessage === '' ? '' : `: ${c.abortMessage}`}`;
}

/** A failed wait in one line: `checkpoint 7 of orders aborted: DECLINED: …`. */
export function abortText(c: CheckpointSummary__Output): string {
  return `checkpoint ${c.checkpointId} of ${c.jobId} aborted: ${abortWhy(c)}`;
}

/** One event of `ckpt watch`: `orders 7 ABORTED DECLINED: …`. */
export function watchLine(c: CheckpointSummary__Output): string {
  const why = abortWhy(c);
  return `${c.jobId} ${c.checkpointId} ${short(c.state, 'CHECKPOINT_STATE_')}${why === '' ? '' : ` ${why}`}`;
}

/**
 * One checkpoint: its row, its epoch, manifest size, slowest alignment and
 * snapshot, why it aborted, and its tasks: when each acknowledged (after
 * the trigger; `-` for none yet), start delay, alignment, sync and async
 * times, sizes, and the positions its manifest recorded.
 */
export function checkpointDetails(res: GetCheckpointResponse__Output): string {
  const c = res.checkpoint;
  if (c === null) return checkpointsTable([]);
  const manifest =
    c.manifestBytes === 0
      ? '-'
      : `${bytes(c.manifestBytes)}${c.manifestParts > 0 ? ` in ${c.manifestParts} parts` : ''}`;
  const lines = [
    checkpointsTable([c]),
    `epoch: ${c.epoch}  manifest: ${manifest}  max alignment: ${duration(c.maxAlignmentMs)}  max snapshot: ${duration(c.maxSnapshotMs)}`,
  ];
  if (c.state === 'CHECKPOINT_STATE_ABORTED') lines.push(`why: ${abortWhy(c)}`);
  const stored = new Map((res.manifest?.tasks ?? []).map((t) => [t.taskId, t]));
  if (res.tasks.length > 0) {
    lines.push('tasks:');
    lines.push(
      table(
        ['  TASK', 'ACKED', 'START DELAY', 'ALIGNMENT', 'SYNC', 'ASYNC', 'SIZE', 'PERSISTED', 'POSITIONS'],
        res.tasks.map((t) => {
          const m = t.metrics;
          const at = (ms: number | undefined): string => (m === null || ms === undefined ? '-' : duration(ms));
          return [
            `  ${t.taskId}`,
            t.acknowledgedAtMs === 0 ? '-' : `+${duration(Math.max(0, t.acknowledgedAtMs - c.triggeredAtMs))}`,
            at(m?.startDelayMs),
            at(m?.alignmentMs),
            at(m?.syncMs),
            at(m?.asyncMs),
            m === null ? '-' : bytes(m.stateSizeBytes),
            m === null ? '-' : bytes(m.persistedBytes),
            (stored.get(t.taskId)?.positions ?? []).map((p) => `${p.input}@${p.offset}`).join(' '),
          ];
        }),
      ),
    );
  }
  return lines.join('\n');
}

/** One row per savepoint. */
export function savepointsTable(savepoints: SavepointSummary__Output[]): string {
  return table(
    ['SAVEPOINT', 'CREATED', 'TASKS', 'STATE SIZE'],
    savepoints.map((s) => [savepointName(s), timestamp(s.createdAtMs), String(s.tasks), bytes(s.stateSizeBytes)]),
  );
}

/** A savepoint's name as the commands take it: `<job>/<checkpoint id>`. */
export function savepointName(s: SavepointSummary__Output): string {
  return `${s.ref?.jobId ?? ''}/${s.ref?.checkpointId ?? 0}`;
}

/**
 * What `ckpt gc` went through: a headline with the counts, one line per
 * piece, and what the coordinator could not reach (file pieces on the
 * machines of workers that are gone stay there).
 */
export function garbageText(jobId: string, res: CollectGarbageResponse__Output): string {
  const total = res.orphans + res.subsumed + res.canceled;
  const verb = res.dryRun ? 'would delete' : 'found';
  const lines = [
    `${verb} ${total} state pieces of job ${jobId} (${res.orphans} orphans, ${res.subsumed} subsumed, ${res.canceled} of the canceled job; ${res.bytes} B)`,
  ];
  for (const p of res.pieces) {
    const outcome = res.dryRun ? '' : p.deleted ? ' deleted' : ` not deleted: ${p.error || 'left to the workers'}`;
    lines.push(`  ${short(p.reason, 'GARBAGE_REASON_').toLowerCase()}  ${p.sizeBytes} B  ${p.uri}${outcome}`);
  }
  if (res.more > 0) lines.push(`  … and ${res.more} more`);
  if (res.canceledStateKeptUntilMs > 0) {
    lines.push(`the canceled job's state is kept until ${new Date(res.canceledStateKeptUntilMs).toISOString()}`);
  }
  if (res.unreachable.length > 0) lines.push('not reached:', ...res.unreachable.map((u) => `  ${u}`));
  return lines.join('\n');
}
