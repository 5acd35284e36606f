/**
 * Barrier alignment of the simulated tasks: a task with several inputs
 * snapshots checkpoint n once barrier n has arrived on every input.
 */

/** What one barrier did to its task's alignment. */
export interface AlignStep {
  /** The first barrier n of this task (unaligned mode snapshots here). */
  first: boolean;
  /** Barrier n has now arrived on every input. */
  aligned: boolean;
  /** Time from the first barrier n to this one. */
  alignmentMs: number;
}

interface Pending {
  seen: Set<string>;
  firstAtMs: number;
}

/** Tracks, per task and checkpoint, which inputs delivered their barrier. */
export class BarrierAligner {
  readonly #inputs = new Map<string, ReadonlySet<string>>();
  readonly #pending = new Map<string, Map<number, Pending>>();
  readonly #done = new Map<string, number>();

  /** `inputsByTask`: each local reader and its distinct inputs. */
  constructor(inputsByTask: ReadonlyMap<string, readonly string[]>) {
    for (const [taskId, inputs] of inputsByTask) this.#inputs.set(taskId, new Set(inputs));
  }

  /**
   * Records barrier `checkpointId` from `fromTaskId` at `taskId`. Returns
   * undefined for a barrier the task does not wait for: an unknown input, a
   * repeat, or a checkpoint it already aligned.
   */
  offer(taskId: string, fromTaskId: string, checkpointId: number, nowMs: number): AlignStep | undefined {
    const inputs = this.#inputs.get(taskId);
    if (inputs === undefined || !inputs.has(fromTaskId)) return undefined;
    if (checkpointId <= (this.#done.get(taskId) ?? 0)) return undefined;
    const byCheckpoint = this.#pending.get(taskId) ?? new Map<number, Pending>();
    this.#pending.set(taskId, byCheckpoint);
    let entry = byCheckpoint.get(checkpointId);
    const first = entry === undefined;
    entry ??= { seen: new Set(), firstAtMs: nowMs };
    if (entry.seen.has(fromTaskId)) return undefined;
    entry.seen.add(fromTaskId);
    byCheckpoint.set(checkpointId, entry);
    const aligned = entry.seen.size === inputs.size;
    if (aligned) this.#finish(taskId, checkpointId, byCheckpoint);
    return { first, aligned, alignmentMs: nowMs - entry.firstAtMs };
  }

  /** Forgets checkpoint `checkpointId` (or every one up to it with `upTo`: aborted) at every task. */
  discard(checkpointId: number, upTo = false): void {
    for (const byCheckpoint of this.#pending.values()) {
      if (!upTo) byCheckpoint.delete(checkpointId);
      else for (const id of [...byCheckpoint.keys()]) if (id <= checkpointId) byCheckpoint.delete(id);
    }
  }

  /** Forgets everything pending (recovery into a new epoch). */
  reset(): void {
    this.#pending.clear();
  }

  #finish(taskId: string, checkpointId: number, byCheckpoint: Map<number, Pending>): void {
    this.#done.set(taskId, checkpointId);
    // Barriers arrive in order per input, so older checkpoints can no longer align.
    for (const id of byCheckpoint.keys()) if (id <= checkpointId) byCheckpoint.delete(id);
  }
}
