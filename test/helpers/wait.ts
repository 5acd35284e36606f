/**
 * Polling for conditions that become true asynchronously.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** How long `eventually` waits by default. */
export const DEFAULT_EVENTUALLY_MS = 10_000;

/** How often `eventually` polls by default. */
export const DEFAULT_POLL_MS = 25;

/** Options of `eventually`. */
export interface EventuallyOptions {
  /** Default: `DEFAULT_EVENTUALLY_MS`. */
  timeoutMs?: number;
  /** Default: `DEFAULT_POLL_MS`. */
  pollMs?: number;
  /** Names the condition in the timeout error. */
  what?: string;
}

/**
 * Calls `check` until it returns a value other than `undefined`, `null` or
 * `false`, and returns that value; throws after `timeoutMs`. Errors thrown by
 * `check` count as "not yet", the last one becomes the cause of the timeout.
 */
export async function eventually<T>(
  check: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_EVENTUALLY_MS);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false)
        return value as Exclude<T, undefined | null | false>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}`, { cause: lastError });
    }
    await delay(options.pollMs ?? DEFAULT_POLL_MS);
  }
}

/** Whether a process with this pid exists (zombies included). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
