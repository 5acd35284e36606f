/**
 * Checks of everything that comes in from callers, before anything changes:
 * ids, labels and job graphs. Each check throws a `CkptError` with reason
 * MALFORMED or OVERSIZED that names the offending field. Every check runs
 * in time linear in its input.
 */
import type { JobSpec, JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import { CkptError, type ErrorIds } from './errors.js';
import { CEILING_LIMITS, DEFAULT_LIMITS, type SpecLimits } from './limits.js';
import { policyToWire, resolvePolicy } from './policy.js';

/** Job and task ids: usable as NATS subject tokens and etcd key segments. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** Most inputs one task may have. */
export const MAX_INPUTS_PER_TASK = 1_024;
/** Longest state handle URI, in bytes (checked with the rest of a snapshot in `snapshot-checks.ts`). */
export const MAX_URI_BYTES = 2_048;
/** Most labels, and the longest label key or value. */
export const MAX_LABELS = 64;
export const MAX_LABEL_BYTES = 256;
/** Longest id echoed in an error message; longer ones are cut. */
const MAX_ECHOED_ID_CHARS = 140;

/** A caller's value for an error message: JSON-quoted and cut, so that it cannot flood a log or a status. */
export function echo(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  const cut = text.length > MAX_ECHOED_ID_CHARS ? `${text.slice(0, MAX_ECHOED_ID_CHARS)}…` : text;
  return JSON.stringify(cut);
}

/** True when `id` is a valid job or task id. */
export function isId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

/** Throws MALFORMED unless `id` is a valid job or task id. */
export function checkId(id: unknown, field: string, ids: ErrorIds = {}): string {
  if (!isId(id)) {
    throw new CkptError('MALFORMED', `${field} ${echo(id ?? '')} must be 1-128 characters of [A-Za-z0-9_-]`, ids);
  }
  return id;
}

/** Throws unless `labels` has at most `MAX_LABELS` entries of at most `MAX_LABEL_BYTES` each. */
export function checkLabels(labels: Record<string, string> | null | undefined, field: string): Record<string, string> {
  if (labels === null || labels === undefined) return {};
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw new CkptError('OVERSIZED', `${field} has more than ${MAX_LABELS} labels`);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw new CkptError('MALFORMED', `${field} value of ${echo(k)} is not a string`);
    if (Buffer.byteLength(k) > MAX_LABEL_BYTES || Buffer.byteLength(v) > MAX_LABEL_BYTES) {
      throw new CkptError('OVERSIZED', `${field} key or value longer than ${MAX_LABEL_BYTES} bytes`);
    }
  }
  return Object.fromEntries(entries);
}

/**
 * Specs `validateJobSpec` returned under limits within the ceilings: valid
 * and normalised for any coordinator, as long as nobody changes them (no
 * one does: a job's spec is read-only once it holds it).
 */
const normalisedSpecs = new WeakSet<object>();

/**
 * True when `spec` is an object `validateJobSpec` returned under limits
 * within `CEILING_LIMITS`: checking it again would find it valid and
 * normalised (the store then skips the check; a job of 100,000 tasks takes
 * a large part of a second per check).
 */
export function isNormalisedSpec(spec: object): boolean {
  return normalisedSpecs.has(spec);
}

/**
 * Validates a submitted job spec and returns it normalised: policy defaults
 * filled in, tasks sorted by id. Refuses unknown inputs and cycles.
 */
export function validateJobSpec(
  spec: JobSpec | null | undefined,
  limits: SpecLimits = DEFAULT_LIMITS,
): JobSpec__Output {
  if (spec === null || spec === undefined) throw new CkptError('MALFORMED', 'spec is required');
  const jobId = checkId(spec.jobId, 'spec.job_id');
  const tasks = spec.tasks ?? [];
  if (tasks.length === 0) throw new CkptError('MALFORMED', 'spec.tasks must name at least one task', { jobId });
  if (tasks.length > limits.maxTasksPerJob) {
    throw new CkptError('OVERSIZED', `spec.tasks has more than ${limits.maxTasksPerJob} tasks`, { jobId });
  }
  const ids = new Set<string>();
  for (const task of tasks) {
    const taskId = checkId(task.taskId, 'spec.tasks.task_id', { jobId });
    if (ids.has(taskId)) throw new CkptError('MALFORMED', `task ${taskId} appears twice`, { jobId, taskId });
    ids.add(taskId);
  }
  const policy = resolvePolicy(spec.policy, limits.maxPolicyDurationMs);
  const normalised = tasks.map((task) => normaliseTask(task, ids, jobId));
  // Specs mostly come sorted (the SDK and the store write them so): a linear check spares the sort.
  if (!sortedById(normalised)) normalised.sort((a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
  checkAcyclic(jobId, normalised);
  const out: JobSpec__Output = {
    jobId,
    tasks: normalised,
    policy: { ...policyToWire(policy) } as JobSpec__Output['policy'],
    labels: checkLabels(spec.labels, 'spec.labels'),
  };
  if (
    limits.maxTasksPerJob <= CEILING_LIMITS.maxTasksPerJob &&
    limits.maxPolicyDurationMs <= CEILING_LIMITS.maxPolicyDurationMs
  ) {
    normalisedSpecs.add(out);
  }
  return out;
}

function sortedById(tasks: JobSpec__Output['tasks']): boolean {
  for (let i = 1; i < tasks.length; i += 1) if (!(tasks[i - 1]!.taskId < tasks[i]!.taskId)) return false;
  return true;
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
  const seen = new Set<string>();
  for (const input of inputs) {
    if (!ids.has(input)) {
      throw new CkptError('MALFORMED', `task ${taskId} reads from unknown task ${echo(input)}`, { jobId, taskId });
    }
    if (input === taskId) throw new CkptError('MALFORMED', `task ${taskId} reads from itself`, { jobId, taskId });
    if (seen.has(input)) throw new CkptError('MALFORMED', `task ${taskId} names an input twice`, { jobId, taskId });
    seen.add(input);
  }
  return { taskId, inputs: [...inputs], labels: checkLabels(task.labels, `task ${taskId} labels`) };
}

/** Kahn's algorithm, in time linear in tasks and edges: every task must be reachable in topological order. */
function checkAcyclic(jobId: string, tasks: JobSpec__Output['tasks']): void {
  const indegree = new Map<string, number>();
  const downstream = new Map<string, string[]>();
  for (const t of tasks) {
    indegree.set(t.taskId, t.inputs.length);
    for (const i of t.inputs) {
      const list = downstream.get(i);
      if (list === undefined) downstream.set(i, [t.taskId]);
      else list.push(t.taskId);
    }
  }
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
