/**
 * Mapping a savepoint onto the tasks of a job submitted from it, as Flink
 * does: state goes by task id; an operator (tasks sharing the `operator`
 * label) whose number of tasks changed is rescaled by key group, each new
 * task restoring from the pieces of every old task whose key groups
 * overlap its own; new tasks start empty. State nothing would restore is
 * refused unless the caller allows dropping it.
 */
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import type { Savepoint__Output } from '../gen/ckpt/v1/Savepoint.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CkptError } from './errors.js';
import { KEY_GROUPS, keyGroupRange, operatorTasks, rangesOverlap } from './key-groups.js';
import { handleOf, piecesOf } from './state-chains.js';

/** The tasks' entries of the new job's first manifest, ordered by task id. */
export function mapSavepoint(
  savepoint: Savepoint__Output,
  spec: JobSpec__Output,
  allowNonRestoredState: boolean,
): TaskSnapshot__Output[] {
  const old = savepoint.spec as JobSpec__Output;
  const oldEntries = new Map((savepoint.manifest?.tasks ?? []).map((s) => [s.taskId, s]));
  const oldOperators = operatorTasks(old);
  const newOperators = operatorTasks(spec);
  const restored = new Set<string>();
  const ids = { jobId: spec.jobId };
  const tasks = [...spec.tasks].sort((a, b) => (a.taskId < b.taskId ? -1 : 1));
  const entries = tasks.map((task): TaskSnapshot__Output => {
    const siblings = newOperators.get(task.taskId);
    const operator = task.labels?.operator;
    const oldSiblings = operator === undefined ? undefined : operatorOf(old, oldOperators, operator);
    if (siblings !== undefined && oldSiblings !== undefined && oldSiblings.length !== siblings.length) {
      checkRescalable(task.taskId, task.inputs.length === 0, old, siblings.length, oldSiblings.length, ids);
      oldSiblings.forEach((t) => restored.add(t));
      return rescaledEntry(task.taskId, siblings, oldSiblings, oldEntries);
    }
    const entry = oldEntries.get(task.taskId);
    if (entry === undefined) return emptyEntry(task.taskId);
    restored.add(task.taskId);
    return entry;
  });
  const dropped = [...oldEntries.values()].filter((s) => !restored.has(s.taskId) && holdsState(s)).map((s) => s.taskId);
  if (dropped.length > 0 && !allowNonRestoredState) {
    const message =
      `the savepoint holds state of tasks ${dropped.join(', ')} that no task of job ${spec.jobId} restores; ` +
      'submit with allow_non_restored_state to drop it';
    throw new CkptError('MALFORMED', message, ids);
  }
  return entries;
}

/** The old tasks of `operator`, sorted; undefined when the savepoint's job had none. */
function operatorOf(old: JobSpec__Output, byTask: Map<string, string[]>, operator: string): string[] | undefined {
  const first = old.tasks.find((t) => t.labels?.operator === operator);
  return first === undefined ? undefined : byTask.get(first.taskId);
}

function checkRescalable(
  taskId: string,
  source: boolean,
  old: JobSpec__Output,
  tasks: number,
  oldTasks: number,
  ids: { jobId: string },
): void {
  const change = `from ${oldTasks} to ${tasks} tasks`;
  if (source) {
    throw new CkptError('MALFORMED', `task ${taskId} is a source: its operator cannot be rescaled ${change}`, ids);
  }
  if (old.policy?.mode === 'CHECKPOINT_MODE_UNALIGNED') {
    const message = `an unaligned savepoint holds in-flight records: the operator of task ${taskId} cannot be rescaled ${change}`;
    throw new CkptError('MALFORMED', message, ids);
  }
  if (tasks > KEY_GROUPS || oldTasks > KEY_GROUPS) {
    throw new CkptError('MALFORMED', `an operator of more than ${KEY_GROUPS} tasks cannot be rescaled`, ids);
  }
}

/** A new task of a rescaled operator: the pieces of every old task whose key groups overlap its own. */
function rescaledEntry(
  taskId: string,
  siblings: readonly string[],
  oldSiblings: readonly string[],
  oldEntries: Map<string, TaskSnapshot__Output>,
): TaskSnapshot__Output {
  const range = keyGroupRange(siblings.indexOf(taskId), siblings.length);
  const pieces = oldSiblings.flatMap((oldTask, index) =>
    rangesOverlap(range, keyGroupRange(index, oldSiblings.length)) ? piecesOf(oldEntries.get(oldTask)?.state) : [],
  );
  return { ...emptyEntry(taskId), state: handleOf(pieces) ?? null };
}

function emptyEntry(taskId: string): TaskSnapshot__Output {
  return { taskId, state: null, positions: [], metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' };
}

function holdsState(snapshot: TaskSnapshot__Output): boolean {
  return (snapshot.state?.uri ?? '') !== '' || snapshot.positions.length > 0;
}
