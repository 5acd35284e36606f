/**
 * The snapshot bytes of a `KeyedState`: UTF-8 canonical JSON
 * `{"entries":[[key,value],…],"version":1}` with entries sorted by key, so
 * that equal states give equal bytes whatever the order of their updates.
 */
import { CkptError } from '../../core/errors.js';
import { canonicalJson } from './canonical-json.js';
import { KeyedState, type JsonValue } from './keyed-state.js';
import { isStatePiece, readPieceEntries, readPieceHeader } from './state-piece.js';

/** The version of the encoding `encodeKeyedState` writes. */
export const KEYED_STATE_VERSION = 1;

/**
 * Encodes `state` deterministically. Throws MALFORMED naming the key whose
 * value JSON cannot represent.
 */
export function encodeKeyedState<V extends JsonValue>(state: KeyedState<V>): Uint8Array {
  const keys = [...state.entries()].map(([key]) => key).sort();
  const parts = keys.map((key) => {
    const value = state.get(key) as JsonValue;
    return `[${JSON.stringify(key)},${canonicalJson(value, `[${JSON.stringify(key)}]`)}]`;
  });
  return new TextEncoder().encode(`{"entries":[${parts.join(',')}],"version":${KEYED_STATE_VERSION}}`);
}

/**
 * Decodes what `encodeKeyedState` wrote, or a full piece of the SDK's
 * incremental snapshots (`state-piece.ts`). Throws MALFORMED for bytes that
 * are neither, of another version, with a key twice, or for a delta piece
 * (it holds changes, not a state). The values are not checked against `V`.
 */
export function decodeKeyedState<V extends JsonValue = JsonValue>(bytes: Uint8Array): KeyedState<V> {
  if (isStatePiece(bytes)) return decodeFullPiece(bytes);
  const document = parse(bytes);
  if (typeof document !== 'object' || document === null || Array.isArray(document)) malformed('it is not an object');
  const { version, entries } = document as { version?: unknown; entries?: unknown };
  if (version !== KEYED_STATE_VERSION) malformed(`its version is ${JSON.stringify(version)}, expected 1`);
  if (!Array.isArray(entries)) malformed('it has no entries array');
  const state = new KeyedState<V>();
  for (const entry of entries as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') {
      malformed('an entry is not a [key, value] pair');
    }
    const [key, value] = entry as [string, V];
    if (state.has(key)) malformed(`key ${JSON.stringify(key)} appears twice`);
    state.set(key, value);
  }
  return state;
}

function decodeFullPiece<V extends JsonValue>(bytes: Uint8Array): KeyedState<V> {
  if (readPieceHeader(bytes).kind !== 'full') malformed('it is a delta piece, which holds only changes');
  const state = new KeyedState<V>();
  readPieceEntries(bytes, (_group, key, value) => {
    if (value === undefined) state.delete(key);
    else state.set(key, value as V);
  });
  return state;
}

function parse(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new CkptError('MALFORMED', `keyed state snapshot is not UTF-8 JSON: ${detail}`, { cause: err });
  }
}

function malformed(problem: string): never {
  throw new CkptError('MALFORMED', `keyed state snapshot is malformed: ${problem}`);
}
