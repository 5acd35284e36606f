/**
 * Field values for generated messages: strings with every kind of unicode
 * and control character, ids next to the allowed pattern, numbers at the
 * edges of 32, 53 and 64 bits, unknown enum numbers, long texts and many
 * repeated elements. Values that depend on the fixture (the pending
 * checkpoint, an epoch, a session token) and very long values stay
 * symbolic, so that a counterexample prints short; `materialize` resolves
 * them just before a message is encoded.
 */
import fc from 'fast-check';
import type { FixtureContext } from './fixture.js';
import type { Message, Value } from './wire.js';

/** A value read from the fixture when the message is sent, plus `delta` for numbers. */
export interface ContextRef {
  $ctx: keyof FixtureContext;
  delta: number;
}

/** `count` copies of `item`; in strings of the copies, `{i}` becomes the copy's index. */
export interface Repeat {
  $repeat: Value;
  count: number;
}

/** The string `text` repeated `count` times. */
export interface LongText {
  $text: string;
  count: number;
}

/** Characters that ids, subjects, keys and metadata choke on. */
export const AWKWARD_CHARS = [
  'é',
  '\n',
  '\r',
  '\t',
  ' ',
  '\0',
  '\u0001',
  '\u007f',
  '\u0080',
  '\u00ff',
  '\u200b',
  '\ufeff',
  '\ud83d\ude00',
  '\ud800',
  '.',
  '*',
  '>',
  '/',
  '%',
  ':',
  '"',
  '\\',
  '$',
] as const;

/** Ids that fit `[A-Za-z0-9_-]{1,128}`. */
export const validId = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);

/** A valid id with one awkward character inserted. */
export const nearId = fc
  .tuple(validId, fc.nat(), fc.constantFrom(...AWKWARD_CHARS))
  .map(([id, at, c]) => id.slice(0, at % (id.length + 1)) + c + id.slice(at % (id.length + 1)));

/** Strings of any code points (lone surrogates included) or of control characters. */
export const wildString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ unit: fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);

/**
 * Long strings, symbolic: around the limits of ids (128), worker ids and
 * labels (256), URIs (2048) and texts (4096); now and then far beyond
 * (64 KiB to 2 MiB).
 */
export const longText: fc.Arbitrary<LongText> = fc.record({
  $text: fc.constantFrom('x', 'é', '\u0001', '\ud83d\ude00'),
  count: fc.oneof(
    { arbitrary: fc.constantFrom(128, 129, 256, 257, 1_024, 2_048, 2_049, 4_096, 4_097), weight: 4 },
    { arbitrary: fc.constantFrom(65_536, 1 << 20, 2 << 20), weight: 1 },
  ),
});

/**
 * An id field: one of `pool`, a valid id, an id next to the pattern, a
 * wild string, or (unless `short`) a long one.
 */
export function idValue(pool: readonly string[], short = false): fc.Arbitrary<Value | LongText> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...pool), weight: 3 },
    { arbitrary: validId, weight: 1 },
    { arbitrary: nearId, weight: 3 },
    { arbitrary: wildString, weight: 2 },
    { arbitrary: fc.constantFrom('', '-', '_'), weight: 1 },
    ...(short ? [] : [{ arbitrary: longText, weight: 1 }]),
  );
}

/** A free text field (messages, URIs, labels); long ones unless `short`. */
export function textValue(short = false): fc.Arbitrary<Value | LongText> {
  return fc.oneof(
    { arbitrary: wildString, weight: 3 },
    { arbitrary: fc.constantFrom('', 'ok'), weight: 1 },
    ...(short ? [] : [{ arbitrary: longText, weight: 2 }]),
  );
}

/** 64-bit edges: 2^31, 2^32, 2^53, 2^63, 2^64 and their neighbours. */
export const U64_EDGES = [
  0n,
  1n,
  2n ** 31n - 1n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
] as const;

/** A uint64 field: an edge, any 64-bit value, a small one, or the fixture's value nearby. */
export function u64Value(near: readonly (keyof FixtureContext)[] = []): fc.Arbitrary<Value | ContextRef> {
  const arbitraries: fc.WeightedArbitrary<Value | ContextRef>[] = [
    { arbitrary: fc.constantFrom(...U64_EDGES), weight: 3 },
    { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 2 },
    { arbitrary: fc.bigInt({ min: 0n, max: 1_000n }), weight: 1 },
  ];
  if (near.length > 0) arbitraries.push({ arbitrary: contextRef(near, true), weight: 3 });
  return fc.oneof(...arbitraries);
}

/** A uint32 field. */
export const u32Value: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom(0, 1, 16, 17, 100, 101, 1000, 1001, 1_000_000, 1_000_001, 2 ** 31 - 1, 2 ** 32 - 1),
  fc.nat(),
);

/** An int32 field. */
export const i32Value: fc.Arbitrary<Value> = fc.oneof(
  fc.constantFrom(-(2 ** 31), -2, -1, 0, 1, 1_000_000, 1_000_001, 2 ** 31 - 1),
  fc.integer(),
);

/** An enum field whose named values are 0..`last`: a named value, or a number the contract does not name. */
export function enumValue(last: number): fc.Arbitrary<Value> {
  return fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: last }), weight: 2 },
    { arbitrary: fc.constantFrom(last + 1, 99, -1, 2 ** 31 - 1, -(2 ** 31)), weight: 1 },
  );
}

/** A reference to the fixture; `nearby` adds a delta of -2..2. */
export function contextRef(keys: readonly (keyof FixtureContext)[], nearby: boolean): fc.Arbitrary<ContextRef> {
  return fc.record({
    $ctx: fc.constantFrom(...keys),
    delta: nearby ? fc.integer({ min: -2, max: 2 }) : fc.constant(0),
  });
}

/**
 * Many copies of `item`: past the limits of 1024 inputs and positions and
 * 10,000 shared pieces; scalars (ids) also 20,000 times, as many as a big
 * job's tasks.
 */
export function repeated(item: fc.Arbitrary<Value>, scalar: boolean): fc.Arbitrary<Repeat> {
  const counts = scalar ? [2, 100, 1_025, 10_001, 20_000] : [2, 100, 1_025, 10_001];
  return fc.record({ $repeat: item, count: fc.constantFrom(...counts) });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Replaces `{i}` in every string of `value` by `i`. */
function indexed(value: Value, i: number): Value {
  if (typeof value === 'string') return value.replaceAll('{i}', String(i));
  if (Array.isArray(value)) return value.map((v) => indexed(v, i));
  if (isObject(value) && typeof value !== 'bigint') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, indexed(v, i)]));
  }
  return value;
}

/** Resolves every symbolic value in `value` against the fixture's context. */
export function materialize(value: unknown, context: FixtureContext): Value {
  if (Array.isArray(value)) return value.flatMap((v) => spread(v, context));
  if (!isObject(value)) return value as Value;
  if ('$ctx' in value) {
    const ref = value as unknown as ContextRef;
    const base = context[ref.$ctx];
    return typeof base === 'number' ? BigInt(Math.max(0, base + ref.delta)) : base;
  }
  if ('$text' in value) {
    const text = value as unknown as LongText;
    return text.$text.repeat(text.count);
  }
  if ('$repeat' in value) return spread(value, context);
  const out: Message = {};
  for (const [k, v] of Object.entries(value)) out[k] = materialize(v, context);
  return out;
}

/** An array element: a `Repeat` spreads into its copies. */
function spread(value: unknown, context: FixtureContext): Value[] {
  if (isObject(value) && '$repeat' in value) {
    const r = value as unknown as Repeat;
    const item = materialize(r.$repeat, context);
    return Array.from({ length: r.count }, (_, i) => indexed(item, i));
  }
  return [materialize(value, context)];
}
