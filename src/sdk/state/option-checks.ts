/**
 * Validation shared by the `resolve*Options` functions of the backends.
 */
import { CkptError } from '../../core/errors.js';

/** Throws MALFORMED naming the backend and the option that is wrong. */
export function invalidOption(backend: string, option: string, problem: string): never {
  throw new CkptError('MALFORMED', `${backend} state backend option ${option} ${problem}`);
}

/** `value`, or `fallback` when undefined; must be a positive safe integer. */
export function positiveInteger(backend: string, option: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved <= 0) {
    invalidOption(backend, option, `must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

/** `value`, or `fallback` when undefined; must be a boolean. */
export function booleanOption(backend: string, option: string, value: boolean | undefined, fallback: boolean): boolean {
  const resolved = value ?? fallback;
  if (typeof resolved !== 'boolean') invalidOption(backend, option, `must be true or false, got ${String(value)}`);
  return resolved;
}
