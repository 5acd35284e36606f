/**
 * Telling a hook's promise from a plain result, so that the runtime awaits
 * only what is asynchronous and runs everything else without a turn of the
 * microtask queue per record.
 */

/** True when `value` is a promise or any other thenable. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** Resolves once `work` has settled, whether it fulfilled or rejected. */
export async function settledOf(work: PromiseLike<unknown>): Promise<void> {
  try {
    await work;
  } catch {
    // The outcome was handled where the work ran.
  }
}

/**
 * Resolves true once `work` has settled, or false when `ms` passed first
 * (the work is left running).
 */
export async function settledWithin(work: PromiseLike<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([settledOf(work).then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
