/**
 * When the coordinator triggered the job's recent checkpoints, as the
 * worker heard it in their `Trigger` messages, for the start delay of each
 * task's snapshot (`SnapshotMetrics.start_delay_ms`): from the trigger (the
 * coordinator's clock) to the task starting the checkpoint (the worker's
 * clock). Every worker hears the triggers, not only those with sources, so
 * that tasks reading barriers can measure it too.
 */

/** Trigger times remembered; older ones are forgotten first. */
export const MAX_TRIGGER_TIMES = 64;

/** The trigger times of the newest checkpoints the worker heard a trigger of, by checkpoint id. */
export class TriggerTimes {
  readonly #times = new Map<number, number>();

  /** The trigger of `checkpointId` says it was triggered at `triggeredAtMs`; 0 (not said) is ignored. */
  heard(checkpointId: number, triggeredAtMs: number): void {
    if (!(triggeredAtMs > 0) || this.#times.has(checkpointId)) return;
    this.#times.set(checkpointId, triggeredAtMs);
    if (this.#times.size > MAX_TRIGGER_TIMES) {
      const oldest = this.#times.keys().next().value;
      if (oldest !== undefined) this.#times.delete(oldest);
    }
  }

  /** When `checkpointId` was triggered; undefined when no trigger of it was heard (or it was forgotten). */
  of(checkpointId: number): number | undefined {
    return this.#times.get(checkpointId);
  }
}

/**
 * Whole milliseconds from `triggeredAtMs` to `startedAtMs` (both
 * `Date.now()` readings, on two machines): 0 when the trigger time is
 * unknown, and 0 rather than negative when the worker's clock is behind
 * the coordinator's.
 */
export function startDelayMs(triggeredAtMs: number | undefined, startedAtMs: number): number {
  if (triggeredAtMs === undefined || !(triggeredAtMs > 0)) return 0;
  return Math.max(0, Math.round(startedAtMs - triggeredAtMs));
}
