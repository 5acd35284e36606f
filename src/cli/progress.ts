/**
 * Progress lines on stderr while a command waits: for a checkpoint or
 * savepoint it triggered (how many tasks acknowledged so far, read through
 * the query service), or for servers to start. stdout carries only the
 * command's result, so `--json` output stays one document.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { QueryClient } from '../client/index.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import { short } from './format.js';

/** How often a waiting command reports. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 1000;

/** The line to print `elapsedMs` into a wait; undefined prints nothing this time. */
export type ProgressReport = (elapsedMs: number) => Promise<string | undefined> | string | undefined;

/** Options of `whileWaiting`. */
export interface WhileWaitingOptions {
  /** Time between lines. Default: `DEFAULT_PROGRESS_INTERVAL_MS`. */
  intervalMs?: number;
  /** When the first line comes. Default: after one interval, so that a short wait prints nothing. */
  firstAfterMs?: number;
}

/**
 * Settles as `work` does. Meanwhile, unless `report` is undefined (progress
 * not wanted), writes its line to stderr every interval; a report that fails
 * (the coordinator did not answer in time) is skipped.
 */
export async function whileWaiting<T>(
  work: Promise<T>,
  report: ProgressReport | undefined,
  options: WhileWaitingOptions = {},
): Promise<T> {
  if (report === undefined) return work;
  const intervalMs = options.intervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const done = new AbortController();
  const started = Date.now();
  const tick = async (): Promise<void> => {
    const line = await Promise.resolve()
      .then(() => report(Date.now() - started))
      .catch(() => undefined);
    if (line !== undefined && !done.signal.aborted) process.stderr.write(`${line}\n`);
  };
  const loop = async (): Promise<void> => {
    let waitMs = options.firstAfterMs ?? intervalMs;
    for (;;) {
      await sleep(waitMs, undefined, { signal: done.signal });
      await tick();
      waitMs = intervalMs;
    }
  };
  // The loop ends by the abort below; what it was doing then is dropped.
  loop().catch(() => undefined);
  try {
    return await work;
  } finally {
    done.abort();
  }
}

/** Seconds since a wait began, for progress lines. */
export function elapsed(ms: number): string {
  return `${Math.floor(ms / 1000)} s`;
}

/**
 * Runs `call`, which triggers a manual checkpoint (a savepoint with
 * `savepoint`) of `jobId` and waits for it; when progress is `wanted`,
 * reports on that checkpoint meanwhile.
 */
export async function reportingOn<T>(
  query: QueryClient,
  jobId: string,
  options: { savepoint: boolean; wanted: boolean },
  call: () => Promise<T>,
): Promise<T> {
  if (!options.wanted) return call();
  // An unknown job fails the call itself, with the coordinator's reason.
  const newestBefore = await newestCheckpointId(query, jobId).catch(() => 0);
  return whileWaiting(call(), checkpointReport(query, jobId, newestBefore, options.savepoint));
}

/** The id of the newest checkpoint of a job, or 0; before triggering one, to tell it from earlier ones. */
async function newestCheckpointId(query: QueryClient, jobId: string): Promise<number> {
  const page = await query.listCheckpoints({ jobId, pageSize: 1 });
  return page.checkpoints[0]?.checkpointId ?? 0;
}

/**
 * Reports on the manual checkpoint (a savepoint with `savepoint`) of `jobId`
 * that the caller triggered after `newestBefore` was its newest checkpoint:
 * `waiting for checkpoint 12 of orders: 3/8 tasks acknowledged, 4 s`.
 */
function checkpointReport(query: QueryClient, jobId: string, newestBefore: number, savepoint: boolean): ProgressReport {
  const noun = savepoint ? 'savepoint' : 'checkpoint';
  let id = 0;
  const ours = (c: CheckpointSummary__Output): boolean =>
    c.checkpointId > newestBefore && c.manual && (c.snapshotType === 'SNAPSHOT_TYPE_SAVEPOINT') === savepoint;
  return async (elapsedMs) => {
    if (id === 0) {
      const page = await query.listCheckpoints({ jobId, pageSize: 20 });
      id = page.checkpoints.filter(ours).at(-1)?.checkpointId ?? 0;
      if (id === 0) return `waiting for a ${noun} of ${jobId} to start, ${elapsed(elapsedMs)}`;
    }
    const { checkpoint: c } = await query.getCheckpoint({ jobId, checkpointId: id });
    if (c === null) return undefined;
    const state =
      c.state === 'CHECKPOINT_STATE_PENDING' ? '' : ` ${short(c.state, 'CHECKPOINT_STATE_').toLowerCase()},`;
    return `waiting for ${noun} ${id} of ${jobId}:${state} ${c.acknowledgedTasks}/${c.totalTasks} tasks acknowledged, ${elapsed(elapsedMs)}`;
  };
}
