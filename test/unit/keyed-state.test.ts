import test from 'ava';
import { CkptError } from '../../src/core/errors.js';
import {
  canonicalJson,
  decodeKeyedState,
  encodeKeyedState,
  KeyedState,
  type JsonValue,
} from '../../src/sdk/state/index.js';

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s);

test('a keyed state behaves like a map of string keys', (t) => {
  const state = new KeyedState<number>([['a', 1]]);
  t.is(state.set('b', 2), state);
  t.is(state.size, 2);
  t.is(state.get('a'), 1);
  t.is(state.get('missing'), undefined);
  t.true(state.has('b'));
  t.true(state.delete('a'));
  t.false(state.delete('a'));
  t.false(state.has('a'));
  t.deepEqual([...state.entries()], [['b', 2]]);
  t.deepEqual([...state], [['b', 2]]);
  state.clear();
  t.is(state.size, 0);
});

test('the encoding is canonical JSON with entries and object keys sorted', (t) => {
  const state = new KeyedState<JsonValue>();
  state.set('b', { z: [1, 'x', null], a: true });
  state.set('a', 0.5);
  t.is(text(encodeKeyedState(state)), '{"entries":[["a",0.5],["b",{"a":true,"z":[1,"x",null]}]],"version":1}');
  t.is(text(encodeKeyedState(new KeyedState())), '{"entries":[],"version":1}');
});

test('equal states give equal bytes whatever the order of their updates', (t) => {
  const one = new KeyedState<JsonValue>();
  one
    .set('x', { b: 1, a: { d: 2, c: 3 } })
    .set('y', 'é')
    .set('gone', 1);
  one.delete('gone');
  const two = new KeyedState<JsonValue>();
  two
    .set('y', 'old')
    .set('x', { a: { c: 3, d: 2 }, b: 1 })
    .set('y', 'é');
  t.deepEqual(encodeKeyedState(one), encodeKeyedState(two));
  two.set('y', 'e');
  t.notDeepEqual(encodeKeyedState(one), encodeKeyedState(two));
});

test('keys sort by UTF-16 code units, independent of locale', (t) => {
  const state = new KeyedState<number>([
    ['b', 1],
    ['B', 2],
    ['ä', 3],
    ['a', 4],
    ['😀', 5],
    ['', 6],
  ]);
  const decoded = decodeKeyedState<number>(encodeKeyedState(state));
  t.deepEqual(
    [...decoded.entries()].map(([k]) => k),
    ['', 'B', 'a', 'b', 'ä', '😀'],
  );
});

test('decoding gives back the same keys and values', (t) => {
  const state = new KeyedState<JsonValue>([
    ['counter', 42],
    ['window', { start: 0, items: ['a', 'b'], nested: { deep: [[], {}] } }],
    ['flag', false],
    ['nothing', null],
    ['quote"and\\slash\n', 'line\u2028sep'],
    ['-0', -0],
  ]);
  const decoded = decodeKeyedState(encodeKeyedState(state));
  t.is(decoded.size, state.size);
  for (const [key, value] of state) t.deepEqual(decoded.get(key), key === '-0' ? 0 : value);
  t.deepEqual(encodeKeyedState(decoded), encodeKeyedState(state));
});

test('undefined object properties are left out, as JSON does', (t) => {
  const value = { a: 1, b: undefined } as unknown as JsonValue;
  t.is(canonicalJson(value), '{"a":1}');
});

test('values JSON cannot represent are refused naming the key', (t) => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const cases: [unknown, RegExp][] = [
    [Number.NaN, /\["k"\] is NaN/],
    [Number.POSITIVE_INFINITY, /Infinity/],
    [[1, undefined], /\["k"\]\[1\] is undefined/],
    [{ when: new Date(0) }, /\["k"\]\["when"\] is a class instance/],
    [{ f: () => 1 }, /is a function/],
    [10n, /is a bigint/],
    [cyclic, /\["k"\]\["self"\] is a cycle/],
  ];
  for (const [value, message] of cases) {
    const state = new KeyedState([['k', value as JsonValue]]);
    const err = t.throws(() => encodeKeyedState(state), { instanceOf: CkptError });
    t.is(err?.reason, 'MALFORMED');
    t.regex(err?.message ?? '', message);
  }
});

test('a shared, acyclic object may appear twice', (t) => {
  const shared = { n: 1 };
  t.is(canonicalJson({ a: shared, b: [shared, shared] }), '{"a":{"n":1},"b":[{"n":1},{"n":1}]}');
});

test('bytes that are not a keyed state snapshot are refused', (t) => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([0xff, 0xfe]), /not UTF-8 JSON/],
    [bytesOf('{"entries":'), /not UTF-8 JSON/],
    [bytesOf('[]'), /not an object/],
    [bytesOf('{"entries":[],"version":2}'), /version is 2/],
    [bytesOf('{"version":1}'), /no entries array/],
    [bytesOf('{"entries":[["a"]],"version":1}'), /not a \[key, value\] pair/],
    [bytesOf('{"entries":[[1,2]],"version":1}'), /not a \[key, value\] pair/],
    [bytesOf('{"entries":[["a",1],["a",2]],"version":1}'), /key "a" appears twice/],
  ];
  for (const [bytes, message] of cases) {
    const err = t.throws(() => decodeKeyedState(bytes), { instanceOf: CkptError });
    t.is(err?.reason, 'MALFORMED');
    t.regex(err?.message ?? '', message);
  }
});
