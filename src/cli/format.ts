/**
 * Plain-text tables for the CLI; `--json` prints the messages instead.
 */
import type { CollectGarbageResponse__Output } from '../gen/ckpt/v1/CollectGarbageResponse.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';

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

/** Bytes in B, KiB, MiB. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
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

/** One row per checkpoint. */
export function checkpointsTable(checkpoints: CheckpointSummary__Output[]): string {
  return table(
    ['ID', 'STATE', 'REASON', 'TYPE', 'TASKS', 'DURATION', 'STATE SIZE', 'MANIFEST', 'MAX ALIGN', 'MAX SNAPSHOT'],
    checkpoints.map((c) => [
      String(c.checkpointId),
      short(c.state, 'CHECKPOINT_STATE_'),
      c.abortReason === 'ABORT_REASON_UNSPECIFIED' ? '' : short(c.abortReason, 'ABORT_REASON_'),
      short(c.snapshotType, 'SNAPSHOT_TYPE_') + (c.manual ? ' (manual)' : ''),
      `${c.acknowledgedTasks}/${c.totalTasks}`,
      c.finishedAtMs === 0 ? '-' : `${c.finishedAtMs - c.triggeredAtMs} ms`,
      bytes(c.stateSizeBytes),
      c.manifestBytes === 0
        ? '-'
        : `${bytes(c.manifestBytes)}${c.manifestParts > 0 ? ` in ${c.manifestParts} parts` : ''}`,
      `${c.maxAlignmentMs} ms`,
      `${c.maxSnapshotMs} ms`,
    ]),
  );
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
