/**
 * Incremental snapshots of one task's keyed state. The state is stored as
 * a chain of immutable pieces: a full piece, then delta pieces, each
 * holding the entries set or deleted since the checkpoint before it. A
 * checkpoint's handle names its own piece (`uri`) and the pieces it builds
 * on (`shared`, oldest first); restoring applies them in that order.
 *
 * A delta builds on the newest checkpoint the task knows completed (its
 * base), never on a pending one, so an aborted checkpoint leaves nothing
 * behind that a later one needs: the changes of every snapshot taken since
 * the base go into the next delta. A full piece rebases the chain when the
 * trigger asks for one, when there is no base of the task's own (first
 * checkpoint, a restore from another task's or job's pieces), after
 * `clear`, or when the chain grew too long or its deltas outweigh its full
 * piece (which bounds what a restore reads to about twice the state).
 */
import { allKeyGroups, keyGroupOf, KEY_GROUPS, sameRange, type KeyGroupRange } from '../../core/key-groups.js';
import { handleOf, piecesOf } from '../../core/state-chains.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';

export { handleOf, piecesOf };
import { canonicalJson } from './canonical-json.js';
import { decodeKeyedState } from './keyed-state-codec.js';
import { HELD_ENTRIES, KeyedState, LOAD, TAKE_CHANGES, type JsonValue } from './keyed-state.js';
import {
  encodeStatePiece,
  ENTRY_OVERHEAD_BYTES,
  isStatePiece,
  LazyString,
  readPieceEntries,
  readPieceHeader,
  type PieceEntry,
  type PieceKind,
} from './state-piece.js';

/** Most pieces in one chain; the next snapshot after that many is full. */
export const DEFAULT_MAX_CHAIN_PIECES = 32;
/** Most snapshots taken since the base; past that the next one is full (their change sets are held). */
const MAX_PENDING_SNAPSHOTS = 64;
const PIECE_HEADER_BYTES = 15;

/** What one snapshot of the state produced, before it is stored. */
export interface PieceSnapshot {
  kind: PieceKind;
  /** The new piece; undefined when nothing changed since the base (the base's pieces are named again). */
  bytes: Uint8Array | undefined;
  /** The pieces it builds on, oldest first (empty for a full piece). */
  shared: StateHandle__Output[];
  /** The size a full piece of the state would have now. */
  logicalBytes: number;
}

/** The options of one task's tracker. */
export interface IncrementalStateOptions {
  /** The key groups the task owns. */
  range?: KeyGroupRange;
  maxChainPieces?: number;
  /** Whether a piece at `uri` is one this task wrote (its own job and task). */
  owns: (uri: string) => boolean;
}

interface Base {
  checkpointId: number;
  /** The pieces, oldest first, each without `shared`. */
  chain: StateHandle__Output[];
  /** All pieces are the task's own: a delta may build on them. */
  own: boolean;
}

/** Tracks one task's base, its changes since, and builds its pieces. */
export class IncrementalState {
  readonly range: KeyGroupRange;
  readonly #maxChain: number;
  readonly #owns: (uri: string) => boolean;
  #base: Base = { checkpointId: 0, chain: [], own: true };
  /** Per snapshot taken since the base, the keys it found changed (`all`: the state was cleared). */
  readonly #taken = new Map<number, Set<string> | 'all'>();
  /** Handles of stored snapshots not yet known completed. */
  readonly #stored = new Map<number, StateHandle__Output>();
  /** Per key, the bytes its entry takes in a full piece, as of the last snapshot. */
  #entryBytes = new Map<string, number>();
  #logicalBytes = PIECE_HEADER_BYTES;

  /** See `IncrementalStateOptions`. */
  constructor(options: IncrementalStateOptions) {
    this.range = options.range ?? allKeyGroups();
    this.#maxChain = Math.max(1, options.maxChainPieces ?? DEFAULT_MAX_CHAIN_PIECES);
    this.#owns = options.owns;
  }

  /**
   * The synchronous part of checkpoint `checkpointId`: a full piece when
   * `options.full` or when a delta may not build on the base, a delta
   * otherwise; with `options.newPiece`, a piece even when nothing changed.
   */
  snapshot(state: KeyedState, checkpointId: number, options: { full: boolean; newPiece?: boolean }): PieceSnapshot {
    const changes = state[TAKE_CHANGES]();
    this.#taken.set(checkpointId, changes.cleared ? 'all' : changes.keys);
    if (options.full || this.#mustRebase()) return this.#full(state);
    const keys = this.#changedSinceBase();
    if (keys === 'all') return this.#full(state);
    // A piece holding in-flight records is never a later checkpoint's newest: a restore would process them again.
    const reusable = this.#base.chain.at(-1)?.inFlightRecords !== true;
    if (keys.size === 0 && options.newPiece !== true && reusable) {
      return { kind: 'delta', bytes: undefined, shared: this.#base.chain, logicalBytes: this.logicalBytes };
    }
    const entries: PieceEntry[] = [];
    for (const key of keys) {
      const value = state.get(key);
      const json = value === undefined && !state.has(key) ? undefined : encodeValue(key, value as JsonValue);
      entries.push({ group: keyGroupOf(key), key, json });
      this.#account(key, json === undefined ? undefined : entryBytes(key, json));
    }
    const bytes = encodeStatePiece({ kind: 'delta', keyGroups: KEY_GROUPS, range: this.range }, entries);
    return { kind: 'delta', bytes, shared: this.#base.chain, logicalBytes: this.logicalBytes };
  }

  /** The size a full piece of the state had at the last snapshot or restore; 0 for an empty state. */
  get logicalBytes(): number {
    return this.#entryBytes.size === 0 ? 0 : this.#logicalBytes;
  }

  /** The snapshot of `checkpointId` is stored under `handle` (its pieces and the shared ones). */
  stored(checkpointId: number, handle: StateHandle__Output): void {
    this.#stored.set(checkpointId, handle);
  }

  /** Checkpoint `checkpointId` completed: its pieces become the base of the next deltas. */
  completed(checkpointId: number): void {
    const handle = this.#stored.get(checkpointId);
    if (handle === undefined || checkpointId <= this.#base.checkpointId) return;
    this.#base = { checkpointId, chain: piecesOf(handle), own: true };
    for (const id of [...this.#taken.keys()]) if (id <= checkpointId) this.#taken.delete(id);
    for (const id of [...this.#stored.keys()]) if (id <= checkpointId) this.#stored.delete(id);
  }

  /** Checkpoint `checkpointId` (or every one up to it) will not complete: its pieces are no base. */
  aborted(checkpointId: number, upTo: boolean): void {
    for (const id of [...this.#stored.keys()])
      if (id === checkpointId || (upTo && id < checkpointId)) this.#stored.delete(id);
  }

  /**
   * Rebuilds the state from the pieces of `handle` (oldest first), keeping
   * only the entries of this task's key groups when a piece was written for
   * other ones, and makes checkpoint `checkpointId` the base.
   */
  restore(checkpointId: number, handle: StateHandle__Output | undefined, pieces: readonly Uint8Array[]): KeyedState {
    const state = new KeyedState();
    this.#entryBytes = new Map();
    this.#logicalBytes = PIECE_HEADER_BYTES;
    for (const bytes of pieces) this.#apply(state, bytes);
    state[TAKE_CHANGES]();
    const chain = piecesOf(handle);
    this.#base = { checkpointId, chain, own: chain.every((p) => this.#owns(p.uri)) };
    this.#taken.clear();
    this.#stored.clear();
    return state;
  }

  /** Forgets what was taken or stored since the base (the task's run ended; a restore follows). */
  reset(): void {
    this.#taken.clear();
    this.#stored.clear();
  }

  #apply(state: KeyedState, bytes: Uint8Array): void {
    if (!isStatePiece(bytes)) {
      // A whole state in the encoding of earlier versions (canonical JSON).
      for (const [key, value] of decodeKeyedState(bytes)) {
        state.set(key, value);
        this.#account(key, entryBytes(key, encodeValue(key, value)));
      }
      return;
    }
    const filter = sameRange(readPieceHeader(bytes).range, this.range) ? undefined : this.range;
    // Long strings stay in the piece until read: a restore copies no value into the heap.
    readPieceEntries(
      bytes,
      (group, key, value, size) => {
        if (filter !== undefined && (group < filter.start || group >= filter.end)) return;
        state[LOAD](key, value);
        this.#account(key, value === undefined ? undefined : size);
      },
      { lazy: true },
    );
  }

  #mustRebase(): boolean {
    const { chain, own } = this.#base;
    if (chain.length === 0 || !own || chain.length >= this.#maxChain || this.#taken.size > MAX_PENDING_SNAPSHOTS)
      return true;
    const [first, ...deltas] = chain;
    const deltaBytes = deltas.reduce((n, p) => n + Number(p.sizeBytes), 0);
    return deltaBytes > Number(first?.sizeBytes ?? 0);
  }

  /** The keys changed in any snapshot taken since the base, or `all` after a clear. */
  #changedSinceBase(): Set<string> | 'all' {
    const keys = new Set<string>();
    for (const [id, changed] of this.#taken) {
      if (id <= this.#base.checkpointId) continue;
      if (changed === 'all') return 'all';
      for (const key of changed) keys.add(key);
    }
    return keys;
  }

  #full(state: KeyedState): PieceSnapshot {
    this.#entryBytes = new Map();
    this.#logicalBytes = PIECE_HEADER_BYTES;
    if (state.size === 0) return { kind: 'full', bytes: undefined, shared: [], logicalBytes: 0 };
    const entries: PieceEntry[] = [];
    for (const [key, value] of state[HELD_ENTRIES]()) {
      // A value still in the piece it was restored from is copied as stored (canonical JSON already).
      const json = value instanceof LazyString ? value.json() : encodeValue(key, value);
      entries.push({ group: keyGroupOf(key), key, json });
      this.#account(key, entryBytes(key, json));
    }
    const bytes = encodeStatePiece({ kind: 'full', keyGroups: KEY_GROUPS, range: this.range }, entries);
    return { kind: 'full', bytes, shared: [], logicalBytes: this.logicalBytes };
  }

  /** Keeps the logical size: `key` now takes `bytes` in a full piece, or is gone. */
  #account(key: string, bytes: number | undefined): void {
    this.#logicalBytes -= this.#entryBytes.get(key) ?? 0;
    if (bytes === undefined) this.#entryBytes.delete(key);
    else {
      this.#entryBytes.set(key, bytes);
      this.#logicalBytes += bytes;
    }
  }
}

function encodeValue(key: string, value: JsonValue): string {
  return canonicalJson(value, `[${JSON.stringify(key)}]`);
}

function entryBytes(key: string, json: string | Uint8Array): number {
  return (
    ENTRY_OVERHEAD_BYTES + Buffer.byteLength(key) + (typeof json === 'string' ? Buffer.byteLength(json) : json.length)
  );
}
