/**
 * Checks of the worker's messages, as they arrive and before anything uses
 * them: hellos, heartbeats, ready and failure reports, declines, and the
 * checkpoint a call names. Each returns the checked values or throws a
 * `CkptError` (MALFORMED or OVERSIZED) naming the field; the caller then
 * changes nothing. Every check is linear in its input.
 */
import type { TaskDecline } from '../gen/ckpt/v1/TaskDecline.js';
import type { TaskHealth, TaskHealth__Output } from '../gen/ckpt/v1/TaskHealth.js';
import type { WorkerHello } from '../gen/ckpt/v1/WorkerHello.js';
import { CkptError, type ErrorIds } from './errors.js';
import { checkCount, checkTextBytes } from './limits.js';
import { checkId, checkLabels } from './validate.js';

/** Worker ids: printable ASCII without spaces, 1-256 characters (host:pid:random). */
export const WORKER_ID_PATTERN = /^[\x21-\x7e]{1,256}$/;

/** A hello that passed `checkHello`. */
export interface CheckedHello {
  workerId: string;
  jobId: string;
  taskIds: string[];
  labels: Record<string, string>;
  epoch: number;
  standby: boolean;
}

/** Checks a hello: ids, the task list (at most `maxTasks`, none twice), labels and epoch. */
export function checkHello(hello: WorkerHello, maxTasks: number): CheckedHello {
  const jobId = checkId(hello.jobId, 'hello.job_id');
  const ids = { jobId };
  const workerId = hello.workerId ?? '';
  if (!WORKER_ID_PATTERN.test(workerId)) {
    throw new CkptError('MALFORMED', 'hello.worker_id must be 1-256 characters of printable ASCII without spaces', ids);
  }
  return {
    workerId,
    jobId,
    taskIds: checkTaskIds(hello.taskIds ?? [], 'hello.task_ids', maxTasks, ids),
    labels: checkLabels(hello.labels, 'hello.labels'),
    epoch: checkCount(hello.epoch ?? 0, 'hello.epoch', Number.MAX_SAFE_INTEGER, ids),
    standby: hello.standby === true,
  };
}

/** Checks a list of task ids: 1 to `max` valid ids, none twice. */
export function checkTaskIds(taskIds: readonly unknown[], field: string, max: number, ids: ErrorIds): string[] {
  if (taskIds.length === 0) throw new CkptError('MALFORMED', `${field} names no task`, ids);
  if (taskIds.length > max) throw new CkptError('OVERSIZED', `${field} names more than ${max} tasks`, ids);
  const seen = new Set<string>();
  for (const taskId of taskIds) {
    const id = checkId(taskId, field, ids);
    if (seen.has(id)) throw new CkptError('MALFORMED', `${field} names task ${id} twice`, { ...ids, taskId: id });
    seen.add(id);
  }
  return [...seen];
}

/** Checks a heartbeat's task reports: ids and figures. */
export function checkHealth(tasks: readonly TaskHealth[], maxTasks: number, ids: ErrorIds): TaskHealth__Output[] {
  if (tasks.length > maxTasks) throw new CkptError('OVERSIZED', `heartbeat reports more than ${maxTasks} tasks`, ids);
  return tasks.map((h) => {
    const taskId = checkId(h.taskId, 'heartbeat.tasks.task_id', ids);
    const at = { ...ids, taskId };
    return {
      taskId,
      busyMs: checkCount(h.busyMs ?? 0, 'heartbeat.tasks.busy_ms', Number.MAX_SAFE_INTEGER, at),
      snapshotMs: checkCount(h.snapshotMs ?? 0, 'heartbeat.tasks.snapshot_ms', Number.MAX_SAFE_INTEGER, at),
      snapshotCheckpointId: checkCount(
        h.snapshotCheckpointId ?? 0,
        'heartbeat.tasks.snapshot_checkpoint_id',
        Number.MAX_SAFE_INTEGER,
        at,
      ),
    };
  });
}

/** The checkpoint and epoch a call names: safe integers, the checkpoint id at least 1. */
export function checkCheckpointRef(
  request: { epoch?: unknown; checkpointId?: unknown },
  ids: ErrorIds,
): { epoch: number; checkpointId: number } {
  const epoch = checkCount(request.epoch ?? 0, 'epoch', Number.MAX_SAFE_INTEGER, ids);
  const checkpointId = checkCount(request.checkpointId ?? 0, 'checkpoint_id', Number.MAX_SAFE_INTEGER, ids);
  if (checkpointId === 0) throw new CkptError('MALFORMED', 'checkpoint_id is required', ids);
  return { epoch, checkpointId };
}

/** Checks declines: 1 to `maxTasks` of them, valid task ids, each message at most `maxTextBytes`. */
export function checkDeclines(
  declines: readonly TaskDecline[],
  maxTasks: number,
  maxTextBytes: number,
  ids: ErrorIds,
): Array<{ taskId: string; message: string }> {
  if (declines.length === 0) throw new CkptError('MALFORMED', 'declines is empty', ids);
  if (declines.length > maxTasks) throw new CkptError('OVERSIZED', `declines has more than ${maxTasks} entries`, ids);
  return declines.map((d) => {
    const taskId = checkId(d.taskId, 'declines.task_id', ids);
    return { taskId, message: checkTextBytes(d.message ?? '', maxTextBytes, 'declines.message', { ...ids, taskId }) };
  });
}

/**
 * A summary of many people-readable parts, at most `maxBytes` long: as many
 * parts as fit, then how many were left out. Abort messages built from
 * declines are bounded by it, so that a broadcast always fits in a NATS
 * message and a summary in etcd.
 */
export function boundedSummary(parts: readonly string[], maxBytes: number): string {
  let text = '';
  for (const [index, part] of parts.entries()) {
    const next = text === '' ? part : `${text}; ${part}`;
    const rest = parts.length - index - 1;
    const tail = rest > 0 ? ` (and ${rest} more)` : '';
    if (Buffer.byteLength(next) + Buffer.byteLength(tail) > maxBytes) {
      if (text === '') return `${cutToBytes(part, maxBytes - 32)}…${tail}`;
      return `${text} (and ${parts.length - index} more)`;
    }
    text = next;
  }
  return text;
}

/** `text` cut to at most `maxBytes` of UTF-8, at a character boundary. */
export function cutToBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  // A cut inside a multi-byte character decodes to U+FFFD: drop it.
  return Buffer.from(text.slice(0, Math.max(0, maxBytes)))
    .subarray(0, Math.max(0, maxBytes))
    .toString('utf8')
    .replace(/\uFFFD$/u, '');
}
