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

/** How long `within` waits by default: far more than a loaded machine needs, far less than ava's timeout. */
export const DEFAULT_WITHIN_MS = 60_000;

/**
 * Resolves or rejects as `promise` does, or rejects after `timeoutMs` naming
 * `what`: an event that never comes fails its test at once, instead of
 * holding the whole run until ava's timeout. The timer never keeps the
 * process alive.
 */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = DEFAULT_WITHIN_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what} (${timeoutMs} ms)`)), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
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
