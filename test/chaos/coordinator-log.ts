/**
 * What the coordinators' JSON log lines (pino, on stderr) tell about a run:
 * recoveries from detection to every task ready, starts, checkpoints
 * completed and aborted. Only lines that name a known message count;
 * anything else is ignored, so a changed message costs a figure, not the run.
 */

/** A log line that matters to the summary. */
export type CoordinatorEvent = { time: number; coordinator: number } & (
  | { kind: 'started' }
  | { kind: 'recovery-started'; jobId: string; why: string }
  | { kind: 'job-started'; jobId: string; epoch: number }
  | { kind: 'checkpoint-completed'; jobId: string; checkpointId: number }
  | { kind: 'checkpoint-aborted'; jobId: string; checkpointId: number; reason: string }
  | { kind: 'leadership'; message: string }
  | { kind: 'error'; message: string }
);

/** How much of an error's message an error line's figure keeps. */
const MAX_CAUSE_CHARS = 120;

/** pino's numeric level of `error`. */
const ERROR_LEVEL = 50;

/** The event of one log line of coordinator `coordinator`, if it is one that matters. */
export function parseCoordinatorLine(line: string, coordinator: number): CoordinatorEvent | undefined {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const time = typeof entry.time === 'number' ? entry.time : Date.now();
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  const base = { time, coordinator };
  const jobId = text(entry.jobId);
  switch (msg) {
    case 'coordinator started':
      return { ...base, kind: 'started' };
    case 'job recovery started':
      return { ...base, kind: 'recovery-started', jobId, why: text(entry.why) };
    case 'every task ready: job started':
      return { ...base, kind: 'job-started', jobId, epoch: Number(entry.epoch ?? 0) };
    case 'checkpoint completed':
      return { ...base, kind: 'checkpoint-completed', jobId, checkpointId: Number(entry.checkpointId ?? 0) };
    case 'checkpoint aborted':
      return {
        ...base,
        kind: 'checkpoint-aborted',
        jobId,
        checkpointId: Number(entry.checkpointId ?? 0),
        reason: (text(entry.reason) || 'unknown').replace(/^ABORT_REASON_/, ''),
      };
    default:
      break;
  }
  if (/\bleader/i.test(msg)) return { ...base, kind: 'leadership', message: msg };
  if (typeof entry.level === 'number' && entry.level >= ERROR_LEVEL) {
    const err = entry.err as { message?: unknown } | undefined;
    const cause = typeof err?.message === 'string' ? `: ${err.message.slice(0, MAX_CAUSE_CHARS)}` : '';
    return { ...base, kind: 'error', message: msg + cause };
  }
  return undefined;
}

/** A string field of a log entry, '' when absent or not a string. */
function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Durations measured from the log. */
export interface LogFigures {
  /** Per recovery (the epoch rose): first `job recovery started` to the next `every task ready`, in ms. */
  recoveryMs: number[];
  /** Per coordinator start (restart or take-over) without a recovery: the start to every task ready, in ms. */
  resumeMs: number[];
  /** `job recovery started` lines after `sinceMs`, by any coordinator. */
  recoveryStarts: number;
  completed: number;
  /** Longest time from `sinceMs` or one completed checkpoint to the next, in ms. */
  longestCommitGapMs: number;
  aborted: number;
  /** Aborted checkpoints by reason. */
  abortedByReason: Record<string, number>;
  /** Error lines, by message. */
  errors: Record<string, number>;
}

/**
 * Recoveries and resumes as episodes. An episode opens at a coordinator
 * start (a restart or a standby taking over) or at a detected failure, and
 * closes when every task is ready. If the epoch rose meanwhile, it was a
 * recovery, timed from the first detection; else a resume, timed from the
 * opening (a deposed leader may detect a failure it can no longer act on).
 * Episodes opening before `sinceMs` (the first start) are not counted.
 */
export function logFigures(events: readonly CoordinatorEvent[], jobId: string, sinceMs = 0): LogFigures {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  const figures: LogFigures = {
    recoveryMs: [],
    resumeMs: [],
    recoveryStarts: 0,
    completed: 0,
    longestCommitGapMs: 0,
    aborted: 0,
    abortedByReason: {},
    errors: {},
  };
  let lastCommitAt = sinceMs;
  let open: { since: number; detectedAt: number | undefined } | undefined;
  let epoch = 0;
  for (const e of sorted) {
    switch (e.kind) {
      case 'started':
        if (e.time >= sinceMs) open ??= { since: e.time, detectedAt: undefined };
        break;
      case 'recovery-started':
        if (e.jobId !== jobId || e.time < sinceMs) break;
        figures.recoveryStarts += 1;
        open ??= { since: e.time, detectedAt: undefined };
        open.detectedAt ??= e.time;
        break;
      case 'job-started':
        if (e.jobId !== jobId) break;
        if (open !== undefined) {
          if (e.epoch > epoch && open.detectedAt !== undefined) figures.recoveryMs.push(e.time - open.detectedAt);
          else figures.resumeMs.push(e.time - open.since);
        }
        epoch = Math.max(epoch, e.epoch);
        open = undefined;
        break;
      case 'checkpoint-completed':
        if (e.jobId !== jobId) break;
        figures.completed += 1;
        if (e.time >= sinceMs) {
          figures.longestCommitGapMs = Math.max(figures.longestCommitGapMs, e.time - lastCommitAt);
          lastCommitAt = e.time;
        }
        break;
      case 'checkpoint-aborted':
        if (e.jobId !== jobId) break;
        figures.aborted += 1;
        figures.abortedByReason[e.reason] = (figures.abortedByReason[e.reason] ?? 0) + 1;
        break;
      case 'error':
        figures.errors[e.message] = (figures.errors[e.message] ?? 0) + 1;
        break;
      case 'leadership':
        break;
    }
  }
  return figures;
}

/**
 * For each leader killed (`at`, and the index of the coordinator killed),
 * the time to the first checkpoint of `jobId` that another coordinator
 * completed after it, in ms; kills after which none completed are left out.
 */
export function timesToNextCommit(
  events: readonly CoordinatorEvent[],
  jobId: string,
  kills: readonly { at: number; coordinator: number }[],
): number[] {
  const commits = events
    .filter((e) => e.kind === 'checkpoint-completed' && e.jobId === jobId)
    .sort((a, b) => a.time - b.time);
  return kills.flatMap(({ at, coordinator }) => {
    const next = commits.find((c) => c.time > at && c.coordinator !== coordinator);
    return next === undefined ? [] : [next.time - at];
  });
}

/**
 * For each leader killed, the time until every job of `jobIds` has
 * completed a checkpoint through another coordinator than the one killed
 * (`timesToNextCommit`, the latest over the jobs), in ms; kills after which
 * some job completed none are left out.
 */
export function timesToEveryJobCommit(
  events: readonly CoordinatorEvent[],
  jobIds: readonly string[],
  kills: readonly { at: number; coordinator: number }[],
): number[] {
  return kills.flatMap((kill) => {
    const perJob = jobIds.map((jobId) => timesToNextCommit(events, jobId, [kill])[0]);
    return perJob.every((ms) => ms !== undefined) ? [Math.max(...perJob)] : [];
  });
}

/** min, median and max of `values`, or undefined when empty. */
export function spread(values: readonly number[]): { min: number; median: number; max: number } | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] as number,
    median: sorted[Math.floor((sorted.length - 1) / 2)] as number,
    max: sorted[sorted.length - 1] as number,
  };
}
