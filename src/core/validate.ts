/**
 * Checks of everything that comes in from callers, before anything changes:
 * ids, job graphs, and task snapshots. Each check throws a `CkptError` with
 * reason MALFORMED or OVERSIZED that names the offending field.
 */
import type { JobSpec, JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CkptError, type ErrorIds } from './errors.js';
import { policyToWire, resolvePolicy } from './policy.js';

/** Job and task ids: usable as NATS subject tokens and etcd key segments. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Most tasks one job may have. */
export const MAX_TASKS_PER_JOB = 100_000;
/** Most inputs one task may have. */
export const MAX_INPUTS_PER_TASK = 1_024;
/** Longest state handle URI, checksum, and input name. */
export const MAX_URI_BYTES = 2_048;
export const MAX_CHECKSUM_BYTES = 256;
export const MAX_INPUT_NAME_BYTES = 512;
/** Most source positions and shared pieces in one task snapshot. */
export const MAX_POSITIONS_PER_TASK = 1_024;
export const MAX_SHARED_PER_TASK = 10_000;
/** Most labels, and the longest label key or value. */
export const MAX_LABELS = 64;
export const MAX_LABEL_BYTES = 256;

/** Throws MALFORMED unless `id` is a valid job or task id. */
export function checkId(id: string | undefined, field: string, ids: ErrorIds = {}): string {
  if (id === undefined || !ID_PATTERN.test(id)) {
    throw new CkptError(
      'MALFORMED',
      `${field} ${JSON.stringify(id ?? '')} must be 1-128 characters of [A-Za-z0-9_-]`,
      ids,
    );
  }
  return id;
}

function checkLabels(labels: Record<string, string> | undefined, field: string): Record<string, string> {
  const entries = Object.entries(labels ?? {});
  if (entries.length > MAX_LABELS) throw new CkptError('OVERSIZED', `${field} has more than ${MAX_LABELS} labels`);
  for (const [k, v] of entries) {
    if (Buffer.byteLength(k) > MAX_LABEL_BYTES || Buffer.byteLength(v) > MAX_LABEL_BYTES) {
      throw new CkptError('OVERSIZED', `${field} key or value longer than ${MAX_LABEL_BYTES} bytes`);
    }
  }
  return Object.fromEntries(entries);
}

/**
 * Validates a submitted job spec and returns it normalised: policy defaults
 * filled in, tasks sorted by id. Refuses unknown inputs and cycles.
 */
export function validateJobSpec(spec: JobSpec | null | undefined): JobSpec__Output {
  if (spec === null || spec === undefined) throw new CkptError('MALFORMED', 'spec is required');
  const jobId = checkId(spec.jobId, 'spec.job_id');
  const tasks = spec.tasks ?? [];
  if (tasks.length === 0) throw new CkptError('MALFORMED', 'spec.tasks must name at least one task', { jobId });
  if (tasks.length > MAX_TASKS_PER_JOB) {
    throw new CkptError('OVERSIZED', `spec.tasks has more than ${MAX_TASKS_PER_JOB} tasks`, { jobId });
  }
  const ids = new Set<string>();
  for (const task of tasks) {
    const taskId = checkId(task.taskId, 'spec.tasks.task_id', { jobId });
    if (ids.has(taskId)) throw new CkptError('MALFORMED', `task ${taskId} appears twice`, { jobId, taskId });
    ids.add(taskId);
  }
  const normalised = tasks
    .map((task) => normaliseTask(task, ids, jobId))
    .sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
  checkAcyclic(jobId, normalised);
  return {
    jobId,
    tasks: normalised,
    policy: { ...policyToWire(resolvePolicy(spec.policy)) } as JobSpec__Output['policy'],
    labels: checkLabels(spec.labels, 'spec.labels'),
  };
}

function normaliseTask(
  task: NonNullable<JobSpec['tasks']>[number],
  ids: Set<string>,
  jobId: string,
): JobSpec__Output['tasks'][number] {
  const taskId = task.taskId as string;
  const inputs = task.inputs ?? [];
  if (inputs.length > MAX_INPUTS_PER_TASK) {
    throw new CkptError('OVERSIZED', `task ${taskId} has more than ${MAX_INPUTS_PER_TASK} inputs`, { jobId, taskId });
  }
  for (const input of inputs) {
    if (!ids.has(input))
      throw new CkptError('MALFORMED', `task ${taskId} reads from unknown task ${input}`, { jobId, taskId });
    if (input === taskId) throw new CkptError('MALFORMED', `task ${taskId} reads from itself`, { jobId, taskId });
  }
  if (new Set(inputs).size !== inputs.length) {
    throw new CkptError('MALFORMED', `task ${taskId} names an input twice`, { jobId, taskId });
  }
  return { taskId, inputs: [...inputs], labels: checkLabels(task.labels, `task ${taskId} labels`) };
}

/** Kahn's algorithm: every task must be reachable in topological order. */
function checkAcyclic(jobId: string, tasks: JobSpec__Output['tasks']): void {
  const indegree = new Map(tasks.map((t) => [t.taskId, t.inputs.length]));
  const downstream = new Map<string, string[]>();
  for (const t of tasks) for (const i of t.inputs) downstream.set(i, [...(downstream.get(i) ?? []), t.taskId]);
  const ready = tasks.filter((t) => t.inputs.length === 0).map((t) => t.taskId);
  let seen = 0;
  while (ready.length > 0) {
    const id = ready.pop() as string;
    seen += 1;
    for (const d of downstream.get(id) ?? []) {
      const left = (indegree.get(d) ?? 0) - 1;
      indegree.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  if (seen !== tasks.length) throw new CkptError('MALFORMED', 'spec.tasks inputs form a cycle', { jobId });
}

function checkBytes(value: string | undefined, max: number, field: string, ids: ErrorIds): void {
  if (value !== undefined && Buffer.byteLength(value) > max) {
    throw new CkptError('OVERSIZED', `${field} is longer than ${max} bytes`, ids);
  }
}

/** Checks the sizes and shape of one task snapshot in an acknowledgement. */
export function validateTaskSnapshot(snapshot: TaskSnapshot, ids: ErrorIds): void {
  const state = snapshot.state ?? undefined;
  checkBytes(state?.uri, MAX_URI_BYTES, 'state.uri', ids);
  checkBytes(state?.checksum, MAX_CHECKSUM_BYTES, 'state.checksum', ids);
  const shared = state?.shared ?? [];
  if (shared.length > MAX_SHARED_PER_TASK) {
    throw new CkptError('OVERSIZED', `state.shared has more than ${MAX_SHARED_PER_TASK} entries`, ids);
  }
  for (const piece of shared) {
    checkBytes(piece.uri, MAX_URI_BYTES, 'state.shared.uri', ids);
    checkBytes(piece.checksum, MAX_CHECKSUM_BYTES, 'state.shared.checksum', ids);
    if ((piece.shared ?? []).length > 0) throw new CkptError('MALFORMED', 'state.shared entries cannot nest', ids);
  }
  const positions = snapshot.positions ?? [];
  if (positions.length > MAX_POSITIONS_PER_TASK) {
    throw new CkptError('OVERSIZED', `positions has more than ${MAX_POSITIONS_PER_TASK} entries`, ids);
  }
  for (const p of positions) {
    if (!p.input) throw new CkptError('MALFORMED', 'positions.input is required', ids);
    checkBytes(p.input, MAX_INPUT_NAME_BYTES, 'positions.input', ids);
  }
}
