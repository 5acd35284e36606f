/**
 * The wire names of `ckpt.v1.StateCompression`, shared by the coordinator
 * (policies, acknowledged handles) and the worker SDK (which codec to write,
 * how to read a handle). A value arrives as its name or, from a newer peer
 * or a decoder that does not know it, as a bare number.
 */
import { StateCompression, type StateCompression__Output } from '../gen/ckpt/v1/StateCompression.js';
import { CkptError, type ErrorIds } from './errors.js';

/** A compression a handle or a policy may name, UNSPECIFIED included. */
export type StateCompressionName = StateCompression__Output;

/** A compression stated explicitly: what a resolved policy holds. */
export type ExplicitStateCompression = Exclude<StateCompressionName, 'STATE_COMPRESSION_UNSPECIFIED'>;

/**
 * The compression a job's workers use when its policy names none: LZ4
 * compresses and decompresses several times faster than any level of
 * gzip or Brotli, so it never dominates the asynchronous part of a
 * checkpoint, and still halves typical keyed state (README, compression).
 * @default 'STATE_COMPRESSION_LZ4'
 */
export const DEFAULT_STATE_COMPRESSION: ExplicitStateCompression = 'STATE_COMPRESSION_LZ4';

/** Every name, in wire order, indexed by its number. */
const NAMES: readonly StateCompressionName[] = Object.values(StateCompression);

/**
 * The name of `value` (a name or its number); throws MALFORMED naming
 * `field` for anything else, such as a number this build does not know.
 */
export function resolveStateCompression(value: unknown, field: string, ids: ErrorIds = {}): StateCompressionName {
  if (value === undefined || value === null) return 'STATE_COMPRESSION_UNSPECIFIED';
  if (typeof value === 'number' && Number.isInteger(value) && NAMES[value] !== undefined) {
    return NAMES[value];
  }
  if (typeof value === 'string' && (NAMES as readonly string[]).includes(value)) return value as StateCompressionName;
  throw new CkptError('MALFORMED', `${field} ${shown(value)} is not a state compression`, ids);
}

/** `value` for an error message, a long string cut short. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 64));
  return typeof value === 'number' || typeof value === 'bigint' ? String(value) : `(a ${typeof value})`;
}

/** Whether the bytes a handle with `compression` names are stored as they are. */
export function isUncompressed(
  compression: StateCompressionName,
): compression is 'STATE_COMPRESSION_UNSPECIFIED' | 'STATE_COMPRESSION_NONE' {
  return compression === 'STATE_COMPRESSION_UNSPECIFIED' || compression === 'STATE_COMPRESSION_NONE';
}
