/**
 * JSON with one spelling per value: object keys sorted by UTF-16 code
 * units, no whitespace, so that equal values always give equal text.
 */
import { CkptError } from '../../core/errors.js';
import type { JsonValue } from './keyed-state.js';

/**
 * The canonical JSON text of `value`. Object properties whose value is
 * `undefined` are left out, as `JSON.stringify` does. Throws MALFORMED,
 * naming where in `value` (`path`), for what JSON cannot represent:
 * non-finite numbers, `undefined` elsewhere, functions, symbols, bigints,
 * objects other than plain objects and arrays, and cycles.
 */
export function canonicalJson(value: JsonValue, path = '$'): string {
  const parts: string[] = [];
  write(value, path, parts, new Set());
  return parts.join('');
}

function write(value: unknown, path: string, parts: string[], ancestors: Set<object>): void {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') {
    parts.push(JSON.stringify(value));
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) notJson(path, String(value));
    parts.push(JSON.stringify(value));
  } else if (Array.isArray(value)) {
    enter(value, path, ancestors);
    parts.push('[');
    value.forEach((item: unknown, i) => {
      if (i > 0) parts.push(',');
      write(item, `${path}[${i}]`, parts, ancestors);
    });
    parts.push(']');
    ancestors.delete(value);
  } else if (isPlainObject(value)) {
    enter(value, path, ancestors);
    writeObject(value, path, parts, ancestors);
    ancestors.delete(value);
  } else {
    notJson(
      path,
      value === undefined ? 'undefined' : `a ${typeof value === 'object' ? 'class instance' : typeof value}`,
    );
  }
}

function writeObject(value: Record<string, unknown>, path: string, parts: string[], ancestors: Set<object>): void {
  parts.push('{');
  let first = true;
  for (const key of Object.keys(value).sort()) {
    const item = value[key];
    if (item === undefined) continue;
    if (!first) parts.push(',');
    first = false;
    parts.push(JSON.stringify(key), ':');
    write(item, `${path}[${JSON.stringify(key)}]`, parts, ancestors);
  }
  parts.push('}');
}

function enter(value: object, path: string, ancestors: Set<object>): void {
  if (ancestors.has(value)) notJson(path, 'a cycle');
  ancestors.add(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function notJson(path: string, what: string): never {
  throw new CkptError('MALFORMED', `keyed state value at ${path} is ${what}, which JSON cannot represent`);
}
