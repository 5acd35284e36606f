/**
 * A handle as a chain of pieces: the pieces it builds on (`shared`, oldest
 * first) then its own (`uri`). Restoring applies them in that order; the
 * SDK, the coordinator (mapping savepoints onto rescaled operators) and the
 * shared-state registry read handles the same way.
 */
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';

/** The pieces, oldest first, a handle names; none for an empty handle. */
export function piecesOf(handle: StateHandle__Output | null | undefined): StateHandle__Output[] {
  if (handle === null || handle === undefined || handle.uri === '') return [];
  return [...handle.shared.map((p) => ({ ...p, shared: [] })), { ...handle, shared: [] }];
}

/** The handle naming `pieces` (oldest first): the newest one with the others shared; undefined for none. */
export function handleOf(pieces: readonly StateHandle__Output[]): StateHandle__Output | undefined {
  const top = pieces.at(-1);
  return top === undefined ? undefined : { ...top, shared: pieces.slice(0, -1).map((p) => ({ ...p, shared: [] })) };
}
