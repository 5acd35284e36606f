/**
 * Where a task's emitted records go: each record to the downstream tasks
 * its router picks (all of them, or one by key), published on the edges of
 * the data plane and counted there for the barriers' record counts.
 */
import type { Logger } from '../log/index.js';
import type { DataPlane } from './data-plane.js';
import { payloadBytes } from './record.js';
import { Router, type EmitOptions } from './router.js';
import type { TaskCounts } from './worker-metrics.js';

/** The outputs of one task. */
export class TaskOutput {
  readonly #taskId: string;
  readonly #router: Router;
  readonly #plane: DataPlane;
  readonly #logger: Logger;
  readonly #counts: TaskCounts | undefined;
  #warnedNoOutputs = false;

  /** `outputs`: the tasks that read this task, in spec order; `counts`: where published records are counted. */
  constructor(taskId: string, outputs: readonly string[], plane: DataPlane, logger: Logger, counts?: TaskCounts) {
    this.#taskId = taskId;
    this.#counts = counts;
    this.#router = new Router(taskId, outputs);
    this.#plane = plane;
    this.#logger = logger;
  }

  /** The downstream tasks, as the task context names them. */
  get targets(): readonly string[] {
    return this.#router.targets;
  }

  /** Publishes one record emitted in `epoch`; without downstream tasks it is dropped (warned once). */
  emit(epoch: number, value: string | Uint8Array, options?: EmitOptions): void {
    const targets = this.#router.route(options);
    if (targets.length === 0) {
      if (!this.#warnedNoOutputs) this.#logger.warn('task has no downstream tasks; emitted records are dropped');
      this.#warnedNoOutputs = true;
      return;
    }
    const bytes = payloadBytes(value);
    for (const to of targets) this.#plane.publishRecord(this.#taskId, to, bytes, epoch, options?.key);
    if (this.#counts !== undefined) this.#counts.recordsOut += targets.length;
  }
}
