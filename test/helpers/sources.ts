/**
 * Sources for SDK tests.
 */
import type { SourceTask } from '../../src/sdk/index.js';

/** A source that emits `n` records "x" once (resuming after its restored position), then idles. */
export function fixedSource(n: number): SourceTask<string> {
  return {
    async *read(positions, ctx) {
      const from = positions.find((p) => p.input === 'fixed')?.offset ?? 0;
      for (let i = from + 1; i <= n && !ctx.signal.aborted; i++) yield { input: 'fixed', offset: i, value: 'x' };
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    },
    handle: (message, ctx) => ctx.emit(message.value),
  };
}
