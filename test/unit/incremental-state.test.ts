import test from 'ava';
import fc from 'fast-check';
import { CkptError } from '../../src/core/errors.js';
import { keyGroupOf, keyGroupRange, KEY_GROUPS } from '../../src/core/key-groups.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { decodeKeyedState, KeyedState, type JsonValue } from '../../src/sdk/state/index.js';
import { handleOf, IncrementalState, piecesOf } from '../../src/sdk/state/incremental-state.js';
import { HELD_ENTRIES } from '../../src/sdk/state/keyed-state.js';
import { encodeStatePiece, LazyString, readPieceHeader } from '../../src/sdk/state/state-piece.js';

/** Pieces by uri, as a backend would keep them; a checkpoint's handle names them. */
class PieceStore {
  readonly pieces = new Map<string, Uint8Array>();

  /** Stores a snapshot's new piece (if any) and returns its handle, as the SDK's upload does. */
  store(task: string, checkpointId: number, bytes: Uint8Array | undefined, shared: StateHandle__Output[]) {
    if (bytes === undefined) return handleOf(shared);
    const uri = `mem://job/${task}/${checkpointId}-0`;
    this.pieces.set(uri, bytes);
    const piece = {
      uri,
      sizeBytes: bytes.length,
      checksum: '',
      shared: [],
      compression: 'STATE_COMPRESSION_NONE' as const,
    };
    return handleOf([...shared, { ...piece, rawSizeBytes: bytes.length, inFlightRecords: false }]);
  }

  read(handle: StateHandle__Output | undefined): Uint8Array[] {
    return piecesOf(handle).map((p) => {
      const bytes = this.pieces.get(p.uri);
      if (bytes === undefined) throw new Error(`piece ${p.uri} is gone`);
      return bytes;
    });
  }
}

const owns = (task: string) => (uri: string) => uri.startsWith(`mem://job/${task}/`);

type Op =
  | { kind: 'put'; key: string; value: JsonValue }
  | { kind: 'delete'; key: string }
  | { kind: 'clear' }
  | { kind: 'snapshot'; full: boolean; outcome: 'complete' | 'abort' | 'later' }
  | { kind: 'restore'; back: number };

const keyArb = fc.constantFrom(...Array.from({ length: 40 }, (_, i) => `k${i}`), 'é', '日本', '');
const valueArb: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer(),
  fc.string(),
  // Long enough to stay in their piece after a restore (LazyString) unless they need escapes.
  fc.string({ minLength: 30, maxLength: 60 }),
  fc.string({ unit: 'grapheme', minLength: 12, maxLength: 30 }),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.boolean(), { maxKeys: 2 }),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ kind: fc.constant('put' as const), key: keyArb, value: valueArb }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('snapshot' as const),
      full: fc.nat(9).map((n) => n < 2),
      outcome: fc.constantFrom('complete' as const, 'complete' as const, 'abort' as const, 'later' as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const), back: fc.nat(4) }) },
);

function asObject(state: KeyedState): Record<string, JsonValue> {
  return Object.fromEntries([...state].sort(([a], [b]) => (a < b ? -1 : 1)));
}

test('a restore from any retained checkpoint rebuilds exactly the state of that checkpoint', (t) => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.integer({ min: 1, max: 6 }), (ops, maxChain) => {
      const store = new PieceStore();
      const tracker = new IncrementalState({ owns: owns('t'), maxChainPieces: maxChain });
      let state = tracker.restore(0, undefined, []);
      let model = new Map<string, JsonValue>();
      let nextId = 1;
      const completed: { id: number; handle: StateHandle__Output | undefined; model: Map<string, JsonValue> }[] = [];
      const later: { id: number; handle: StateHandle__Output | undefined; model: Map<string, JsonValue> }[] = [];
      for (const op of ops) {
        if (op.kind === 'put') {
          state.set(op.key, op.value);
          model.set(op.key, op.value);
        } else if (op.kind === 'delete') {
          state.delete(op.key);
          model.delete(op.key);
        } else if (op.kind === 'clear') {
          state.clear();
          model.clear();
        } else if (op.kind === 'snapshot') {
          // The live state reads as the model, values restored undecoded included.
          t.deepEqual(asObject(state), Object.fromEntries([...model].sort(([a], [b]) => (a < b ? -1 : 1))));
          const id = nextId++;
          const piece = tracker.snapshot(state, id, { full: op.full });
          const handle = store.store('t', id, piece.bytes, piece.shared);
          if (handle !== undefined) tracker.stored(id, handle);
          const taken = { id, handle, model: new Map(model) };
          if (op.outcome === 'complete') {
            tracker.completed(id);
            completed.push(taken);
          } else if (op.outcome === 'abort') tracker.aborted(id, false);
          else later.push(taken);
          // A checkpoint left pending completes after a newer one was taken.
          const late = later.shift();
          if (late !== undefined && op.outcome !== 'later') {
            tracker.completed(late.id);
            completed.push(late);
          }
        } else {
          const target = completed.at(-1 - Math.min(op.back, completed.length - 1));
          if (target === undefined) continue;
          state = tracker.restore(target.id, target.handle, store.read(target.handle));
          model = new Map(target.model);
          later.length = 0;
          nextId += 1;
        }
      }
      for (const c of completed) {
        const fresh = new IncrementalState({ owns: owns('t') });
        const restored = fresh.restore(c.id, c.handle, store.read(c.handle));
        t.deepEqual(asObject(restored), Object.fromEntries([...c.model].sort(([a], [b]) => (a < b ? -1 : 1))));
      }
    }),
    { numRuns: 300 },
  );
});

test('the acknowledged state size is the size of a full piece of the state, also after deltas and restores', (t) => {
  const tracker = new IncrementalState({ owns: owns('t') });
  const state = tracker.restore(0, undefined, []);
  const store = new PieceStore();
  for (let i = 0; i < 500; i += 1) state.set(`key-${i}`, { n: i, s: 'x'.repeat(i % 17) });
  let id = 1;
  const snap = (full = false) => {
    const piece = tracker.snapshot(state, id, { full });
    const handle = store.store('t', id, piece.bytes, piece.shared);
    if (handle !== undefined) tracker.stored(id, handle);
    tracker.completed(id);
    id += 1;
    return { piece, handle };
  };
  const first = snap();
  t.is(first.piece.kind, 'full');
  t.is(first.piece.logicalBytes, first.piece.bytes?.length ?? -1);
  for (let i = 0; i < 5; i += 1) state.set(`key-${i}`, 'changed');
  state.delete('key-499');
  const delta = snap();
  t.is(delta.piece.kind, 'delta');
  t.true((delta.piece.bytes?.length ?? 0) < (first.piece.bytes?.length ?? 0) / 10);
  const full = new IncrementalState({ owns: owns('other') }).snapshot(state, 99, { full: true });
  t.is(delta.piece.logicalBytes, full.bytes?.length ?? -1);
  const unchanged = snap();
  t.is(unchanged.piece.bytes, undefined, 'nothing changed: no new piece');
  t.deepEqual(piecesOf(unchanged.handle), piecesOf(delta.handle), 'the base is named again');
  const restored = new IncrementalState({ owns: owns('t') });
  restored.restore(2, delta.handle, store.read(delta.handle));
  t.is(restored.logicalBytes, full.bytes?.length ?? -1);
});

test('restored long strings stay in their piece until read, and a piece mostly overwritten is let go', (t) => {
  const store = new PieceStore();
  const writer = new IncrementalState({ owns: owns('t') });
  const state = writer.restore(0, undefined, []);
  const value = (i: number) => `v${String(i).padStart(2, '0')}-${'é'.repeat(20)}-${'x'.repeat(40)}`;
  for (let i = 0; i < 100; i += 1) state.set(`k${i}`, value(i));
  state.set('short', 'abc');
  state.set('escaped', `a "quoted" ${'y'.repeat(40)}`);
  state.set('number', 7);
  const piece = writer.snapshot(state, 1, { full: true });
  const handle = store.store('t', 1, piece.bytes, piece.shared);
  const reader = new IncrementalState({ owns: owns('t') });
  const restored = reader.restore(1, handle, store.read(handle));
  const lazy = () => [...restored[HELD_ENTRIES]()].filter(([, v]) => v instanceof LazyString).map(([k]) => k);
  t.is(lazy().length, 100, 'the long plain strings are held undecoded; short, escaped and other values are decoded');
  t.is(restored.get('k3'), value(3));
  t.is(lazy().length, 99, 'a read decodes that value only');
  t.false(lazy().includes('k3'));
  t.is(restored.get('escaped'), `a "quoted" ${'y'.repeat(40)}`);
  // A full piece of the restored state copies the undecoded values as stored: the same bytes.
  const again = reader.snapshot(restored, 2, { full: true });
  t.deepEqual(again.bytes, piece.bytes);
  t.is(again.logicalBytes, piece.logicalBytes);
  t.is(lazy().length, 99, 'a full snapshot decodes nothing');
  for (let i = 50; i < 99; i += 1) restored.set(`k${i}`, 'new');
  t.is(lazy().length, 50, 'overwritten values are let go one by one while half of the piece is still held');
  restored.delete('k99');
  t.is(lazy().length, 0, 'under half of what was taken from the piece is still held undecoded: all of it is decoded');
  t.deepEqual(
    Object.fromEntries(restored),
    Object.fromEntries([
      ...Array.from({ length: 100 }, (_, i) => [`k${i}`, i >= 50 ? 'new' : value(i)] as const).filter(
        ([k]) => k !== 'k99',
      ),
      ['short', 'abc'],
      ['escaped', `a "quoted" ${'y'.repeat(40)}`],
      ['number', 7],
    ]),
  );
});

test('letting one piece go keeps the values other pieces still hold undecoded readable', (t) => {
  const store = new PieceStore();
  const writer = new IncrementalState({ owns: owns('t') });
  const state = writer.restore(0, undefined, []);
  const long = (s: string) => `${s}-${'z'.repeat(40)}`;
  for (let i = 0; i < 10; i += 1) state.set(`k${i}`, long(`k${i}`));
  let handle: StateHandle__Output | undefined;
  // A full piece of ten values, then three deltas of two new values each.
  for (let id = 1; id <= 4; id += 1) {
    if (id > 1) for (const n of [0, 1]) state.set(`n${id}-${n}`, long(`n${id}-${n}`));
    const piece = writer.snapshot(state, id, { full: id === 1 });
    handle = store.store('t', id, piece.bytes, piece.shared);
    if (handle !== undefined) writer.stored(id, handle);
    writer.completed(id);
  }
  t.is(piecesOf(handle).length, 4);
  const restored = new IncrementalState({ owns: owns('t') }).restore(4, handle, store.read(handle));
  // Six of the full piece's ten values overwritten: it is let go, its other four decoded.
  for (let i = 0; i < 6; i += 1) restored.set(`k${i}`, 'new');
  // Five of the six values of the deltas read; one is still held undecoded.
  for (const key of ['n2-0', 'n2-1', 'n3-0', 'n3-1', 'n4-0']) t.is(restored.get(key), long(key));
  const values = [...restored];
  t.true(
    values.every(([, v]) => typeof v === 'string'),
    'every value iterates as a string',
  );
  t.is(new Map(values).get('n4-1'), long('n4-1'));
});

test('the first snapshot after a restore from pieces the task did not write is full', (t) => {
  const store = new PieceStore();
  const writer = new IncrementalState({ owns: owns('a') });
  const state = writer.restore(0, undefined, []);
  state.set('x', 1);
  const piece = writer.snapshot(state, 1, { full: false });
  const handle = store.store('a', 1, piece.bytes, piece.shared);
  const reader = new IncrementalState({ owns: owns('b') });
  const restored = reader.restore(1, handle, store.read(handle));
  restored.set('y', 2);
  t.is(reader.snapshot(restored, 2, { full: false }).kind, 'full');
});

test('keyed state splits by key group: n tasks restore exactly their keys from the pieces of m tasks', (t) => {
  const keys = Array.from({ length: 3000 }, (_, i) => `word-${i}`);
  for (const [from, to] of [
    [2, 3],
    [3, 2],
    [1, 4],
    [4, 1],
    [5, 7],
  ] as [number, number][]) {
    const store = new PieceStore();
    const handles: (StateHandle__Output | undefined)[] = [];
    for (let i = 0; i < from; i += 1) {
      const range = keyGroupRange(i, from);
      const tracker = new IncrementalState({ owns: owns(`t${i}`), range });
      const state = tracker.restore(0, undefined, []);
      for (const key of keys) {
        const group = keyGroupOf(key);
        if (group >= range.start && group < range.end) state.set(key, key.length);
      }
      let handle = store.store(`t${i}`, 1, tracker.snapshot(state, 1, { full: true }).bytes, []);
      if (handle !== undefined) tracker.stored(1, handle);
      tracker.completed(1);
      // A delta on top, deleting one key of the range.
      const own = keys.find((k) => keyGroupOf(k) >= range.start && keyGroupOf(k) < range.end) as string;
      state.delete(own);
      const delta = tracker.snapshot(state, 2, { full: false });
      handle = store.store(`t${i}`, 2, delta.bytes, delta.shared);
      handles.push(handle);
    }
    const merged = handleOf(handles.flatMap((h) => piecesOf(h)));
    const seen = new Set<string>();
    for (let j = 0; j < to; j += 1) {
      const range = keyGroupRange(j, to);
      const restored = new IncrementalState({ owns: owns(`n${j}`), range }).restore(2, merged, store.read(merged));
      for (const [key] of restored) {
        const group = keyGroupOf(key);
        t.true(group >= range.start && group < range.end, `${key} is in range of task ${j} of ${to}`);
        t.false(seen.has(key));
        seen.add(key);
      }
    }
    t.is(seen.size, keys.length - from, `${from} → ${to}: every key but the deleted ones, once`);
  }
});

test('a piece that is truncated, padded or names a key group outside its range is refused with MALFORMED', (t) => {
  const range = { start: 0, end: KEY_GROUPS };
  const good = encodeStatePiece({ kind: 'full', keyGroups: KEY_GROUPS, range }, [
    { group: keyGroupOf('a'), key: 'a', json: '1' },
  ]);
  t.is(readPieceHeader(good).entries, 1);
  for (const bad of [
    good.subarray(0, good.length - 1),
    Buffer.concat([good, Buffer.from([0])]),
    encodeStatePiece({ kind: 'full', keyGroups: 4, range: { start: 0, end: 4 } }, [{ group: 9, key: 'a', json: '1' }]),
    encodeStatePiece({ kind: 'full', keyGroups: KEY_GROUPS, range }, [{ group: 1, key: 'a', json: '{' }]),
  ]) {
    const err = t.throws(() => decodeKeyedState(bad), { instanceOf: CkptError });
    t.is(err?.reason, 'MALFORMED');
  }
  const delta = encodeStatePiece({ kind: 'delta', keyGroups: KEY_GROUPS, range }, []);
  t.throws(() => decodeKeyedState(delta), { message: /delta piece/ });
});
