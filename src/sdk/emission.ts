/**
 * What a source or mapping hook returns to emit: a payload, a payload with
 * routing, or several of them.
 */
import type { EmitOptions } from './router.js';
import type { TaskContext } from './task.js';

/** One record to emit: a bare payload (to every downstream task) or a payload with routing. */
export type Emission = string | Uint8Array | ({ value: string | Uint8Array } & EmitOptions);

/** What a hook may return: nothing, one emission, or several. */
export type Emissions = Emission | readonly Emission[] | undefined | null;

/** Emits every emission of `emissions` through `ctx`, in order. */
export function emitAll(emissions: Emissions, ctx: TaskContext): void {
  if (emissions === undefined || emissions === null) return;
  const list: readonly Emission[] = Array.isArray(emissions) ? emissions : [emissions as Emission];
  for (const e of list) {
    if (typeof e === 'string' || e instanceof Uint8Array) ctx.emit(e);
    else
      ctx.emit(e.value, {
        ...(e.key === undefined ? {} : { key: e.key }),
        ...(e.to === undefined ? {} : { to: e.to }),
      });
  }
}
