/**
 * An append-only in-memory input and a source that reads it, for SDK
 * tests that feed a job record by record.
 */
import { EventEmitter } from 'node:events';
import type { SourceTask } from '../../src/sdk/index.js';

/** An append-only in-memory input, read by `logSource`. */
export class MemoryLog {
  readonly items: string[] = [];
  readonly #changed = new EventEmitter();

  push(...items: string[]): void {
    this.items.push(...items);
    this.#changed.emit('push');
  }

  /** Resolves at the next push or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#changed.off('push', done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#changed.once('push', done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/**
 * A source reading a `MemoryLog` as its input `log`; offsets are 1-based
 * indexes, so a restore resumes after the last item its position names.
 * `hooks` adds checkpoint hooks.
 */
export function logSource(log: MemoryLog, hooks: Partial<SourceTask<string>> = {}): SourceTask<string> {
  return {
    async *read(positions, ctx) {
      let next = (positions.find((p) => p.input === 'log')?.offset ?? 0) + 1;
      while (!ctx.signal.aborted) {
        const value = log.items[next - 1];
        if (value === undefined) {
          await log.changed(ctx.signal);
          continue;
        }
        yield { input: 'log', offset: next, value };
        next += 1;
      }
    },
    handle: (message, ctx) => ctx.emit(message.value),
    ...hooks,
  };
}
