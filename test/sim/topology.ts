/**
 * What a simulated worker needs to know about its tasks in the job graph:
 * which are sources, which local tasks read which inputs, and which tasks
 * (local or not) each local task sends its barriers to.
 */
import { CkptError } from '../../src/core/errors.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';

/** The local view of the job graph. */
export interface WorkerTopology {
  /** Local tasks without inputs, in the order given. */
  readonly sources: readonly string[];
  /** Local tasks with inputs, and their distinct inputs. */
  readonly inputsByTask: ReadonlyMap<string, readonly string[]>;
  /** For each input task id, the local tasks reading it. */
  readonly readersByInput: ReadonlyMap<string, readonly string[]>;
  /** For each local task, the distinct tasks of the job that read it, in spec order. */
  readonly outputsByTask: ReadonlyMap<string, readonly string[]>;
}

/**
 * Splits `taskIds` into sources and readers from `spec`. Throws
 * `CkptError('MALFORMED')` for a task id that is not in the spec or given twice.
 */
export function workerTopology(spec: JobSpec, taskIds: readonly string[]): WorkerTopology {
  const inputsOf = new Map<string, readonly string[]>();
  const outputsOf = new Map<string, string[]>();
  for (const task of spec.tasks ?? []) {
    const taskId = task.taskId ?? '';
    const inputs = [...new Set(task.inputs ?? [])];
    inputsOf.set(taskId, inputs);
    for (const input of inputs) {
      const outputs = outputsOf.get(input) ?? [];
      outputs.push(taskId);
      outputsOf.set(input, outputs);
    }
  }
  const sources: string[] = [];
  const inputsByTask = new Map<string, readonly string[]>();
  const readersByInput = new Map<string, string[]>();
  const outputsByTask = new Map<string, readonly string[]>();
  const seen = new Set<string>();
  for (const taskId of taskIds) {
    const inputs = inputsOf.get(taskId);
    if (inputs === undefined)
      throw new CkptError('MALFORMED', `task ${taskId} is not in the spec of job ${spec.jobId ?? ''}`, { taskId });
    if (seen.has(taskId)) throw new CkptError('MALFORMED', `task ${taskId} is given twice`, { taskId });
    seen.add(taskId);
    outputsByTask.set(taskId, outputsOf.get(taskId) ?? []);
    if (inputs.length === 0) {
      sources.push(taskId);
      continue;
    }
    inputsByTask.set(taskId, inputs);
    for (const input of inputs) {
      const readers = readersByInput.get(input) ?? [];
      readers.push(taskId);
      readersByInput.set(input, readers);
    }
  }
  return { sources, inputsByTask, readersByInput, outputsByTask };
}
