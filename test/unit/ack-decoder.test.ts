/**
 * The acknowledgement decoder against protobuf.js: what it decodes is what
 * proto-loader's deserializer makes of the same bytes, with each snapshot's
 * bytes as `snapshotEncodings` splits them; what it does not decode goes
 * to that deserializer, so that the Attach deserializer the server
 * composes answers every input, valid or not, as it did without it.
 */
import { deepStrictEqual, strictEqual } from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import type { AttachRequest__Output } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { ProtoGrpcType } from '../../src/gen/coordinator.js';
import { DESCRIPTOR_JSON } from '../../src/gen/descriptor.js';
import { loadPackageDefinition } from '../../src/proto/package-definition.js';
import { decodeAcknowledgement, MAX_SHARED_DEPTH } from '../../src/server/ack-decoder.js';
import { snapshotEncodings, withAcknowledgementBytes } from '../../src/server/attach.js';
import { tolerantDeserializers } from '../../src/server/handlers.js';
import { withEncodedReplies } from '../../src/server/reply-stream.js';
import { adoptTaskBytes, taskBytes } from '../../src/store/manifest-encoding.js';

// The server's own service definition (proto-loader), as grpc-server.ts composes it.
const service = (grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as ProtoGrpcType).ckpt.v1.Coordinator
  .service;
const generic = service.Attach.requestDeserialize as (bytes: Buffer) => unknown;
const tolerant = tolerantDeserializers(service).Attach!.requestDeserialize as (bytes: Buffer) => unknown;
const composed = withAcknowledgementBytes(withEncodedReplies(tolerantDeserializers(service))).Attach!
  .requestDeserialize as (bytes: Buffer) => unknown;

const root = protobuf.Root.fromJSON(JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace);
const attachType = root.lookupType('ckpt.v1.AttachRequest');

/** protobuf.js's encoding of an AttachRequest given as protobuf.js takes objects (no verify: unknown enums pass). */
function encode(request: Record<string, unknown>): Buffer {
  return Buffer.from(attachType.encode(attachType.fromObject(request)).finish());
}

/** The Attach deserializer as it was before the decoder: the generic one, then the snapshots' bytes split out. */
function previous(bytes: Buffer): unknown {
  const message = tolerant(bytes) as Partial<AttachRequest__Output> | null;
  const snapshots = message?.acknowledge?.snapshots;
  if (Array.isArray(snapshots) && snapshots.length > 0) {
    const entries = snapshotEncodings(bytes);
    if (entries?.length === snapshots.length) snapshots.forEach((s, i) => adoptTaskBytes(s, entries[i]!));
  }
  return message;
}

const PROBE = new Uint8Array(0);

/** The bytes each snapshot of a decoded request keeps, undefined for one that keeps none. */
function keptBytes(message: unknown): (Buffer | undefined)[] {
  const snapshots = (message as Partial<AttachRequest__Output> | null)?.acknowledge?.snapshots ?? [];
  return snapshots.map((s) => {
    adoptTaskBytes(s, PROBE); // kept only if the snapshot kept nothing
    const bytes = taskBytes(s);
    return bytes === PROBE ? undefined : Buffer.from(bytes);
  });
}

/** Deep-equal, key order included (JSON), strict on types, -0, prototypes and symbol keys (the undecodable marker). */
function same(actual: unknown, expected: unknown): void {
  deepStrictEqual(actual, expected);
  strictEqual(JSON.stringify(actual), JSON.stringify(expected));
}

/** The composed deserializer answers `bytes` as the previous one did; true when the decoder took them. */
function answersAsBefore(bytes: Buffer): boolean {
  const before = previous(Buffer.from(bytes));
  const after = composed(Buffer.from(bytes));
  same(after, before);
  deepStrictEqual(keptBytes(after), keptBytes(before));
  return decodeAcknowledgement(Buffer.from(bytes)) !== undefined;
}

const U64_EDGES = ['0', '1', '127', '128', '4294967295', '4294967296', '9007199254740991', '9007199254740993'];
// protobuf.js takes a uint64 as a number, or as a decimal string up to 2^64 - 1.
const u64 = fc.oneof(
  fc.nat(),
  fc.constantFrom(...U64_EDGES, '9223372036854775808', '18446744073709549568', '18446744073709551615'),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
);
const enumValue = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }), // lone surrogates: written as invalid UTF-8
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.string({ minLength: 100, maxLength: 300 }),
);

function handle(depth: number): fc.Arbitrary<Record<string, unknown>> {
  const shared = depth === 0 ? fc.constant([]) : fc.array(handle(depth - 1), { maxLength: 2 });
  const fields = { uri: text, sizeBytes: u64, checksum: text, shared, compression: enumValue, rawSizeBytes: u64 };
  return fc.record({ ...fields, inFlightRecords: fc.boolean() }, { requiredKeys: [] });
}

const metrics = fc.record(
  Object.fromEntries(
    ['alignmentMs', 'syncMs', 'asyncMs', 'stateSizeBytes', 'persistedBytes', 'inFlightBytes', 'processedRecords']
      .concat('startDelayMs')
      .map((k) => [k, u64]),
  ),
  { requiredKeys: [] },
);
const snapshot = fc.record(
  {
    taskId: text,
    state: fc.oneof(handle(3), fc.constant({})),
    positions: fc.array(fc.record({ input: text, offset: u64 }, { requiredKeys: [] }), { maxLength: 3 }),
    metrics: fc.oneof(metrics, fc.constant({})),
    snapshotType: enumValue,
  },
  { requiredKeys: [] },
);
const acknowledgement = fc.record(
  { requestId: u64, epoch: u64, checkpointId: u64, snapshots: fc.array(snapshot, { maxLength: 6 }) },
  { requiredKeys: [] },
);

test('valid acknowledgements decode as proto-loader decodes them, with each snapshot’s bytes', (t) => {
  fc.assert(
    fc.property(acknowledgement, (ack) => {
      const bytes = encode({ acknowledge: ack });
      const decoded = decodeAcknowledgement(bytes);
      if (decoded === undefined) throw new Error('the decoder refused a valid acknowledgement');
      same(decoded.request, generic(bytes));
      const ranges = decoded.snapshotRanges;
      const pieces = (snapshotEncodings(bytes) ?? []).map((b) => Buffer.from(b));
      deepStrictEqual(
        pieces,
        decoded.request.acknowledge.snapshots.map((_, i) => bytes.subarray(ranges[2 * i], ranges[2 * i + 1])),
      );
      strictEqual(answersAsBefore(bytes), true);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('strings that are not UTF-8 decode as proto-loader decodes them', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 24 }), fc.uint8Array({ maxLength: 24 }), (taskId, uri) => {
      const w = protobuf.Writer.create().uint32(0x2a).fork().uint32(0x22).fork().uint32(0x0a).bytes(taskId);
      const bytes = Buffer.from(w.uint32(0x12).fork().uint32(0x0a).bytes(uri).ldelim().ldelim().ldelim().finish());
      const decoded = decodeAcknowledgement(bytes);
      if (decoded === undefined) throw new Error('the decoder refused a valid acknowledgement');
      same(decoded.request, generic(bytes));
    }),
    { numRuns: 200 },
  );
  t.pass();
});

type Mutation = { kind: 'set' | 'insert' | 'delete' | 'truncate'; at: number; value: number };

function mutate(bytes: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const { kind, at: where, value } of mutations) {
    const at = out.length === 0 ? 0 : where % out.length;
    if (kind === 'set' && out.length > 0) out[at] = value;
    else if (kind === 'insert') out = Buffer.concat([out.subarray(0, at), Buffer.of(value), out.subarray(at)]);
    else if (kind === 'delete') out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
    else if (kind === 'truncate') out = out.subarray(0, at);
  }
  return out;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.oneof(
    { arbitrary: fc.constant('set' as const), weight: 3 },
    fc.constantFrom('insert', 'delete', 'truncate'),
  ),
  at: fc.nat(),
  value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff)),
});

test('mutated and random bytes are answered as before: the same request, or the same refusal', (t) => {
  let taken = 0;
  let runs = 0;
  const small = fc.record({
    requestId: u64,
    snapshots: fc.array(snapshot, { minLength: 1, maxLength: 3 }),
  });
  fc.assert(
    fc.property(small, fc.array(mutation, { minLength: 1, maxLength: 2 }), (ack, mutations) => {
      runs += 1;
      if (answersAsBefore(mutate(encode({ acknowledge: ack }), mutations))) taken += 1;
    }),
    { numRuns: 400 },
  );
  const random = fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.concat([Buffer.of(0x2a, b.length), b])),
  );
  fc.assert(
    fc.property(random, (bytes) => void answersAsBefore(Buffer.from(bytes))),
    { numRuns: 300 },
  );
  // Mutations inside strings and numbers keep a regular form: the decoder's answers were compared too.
  t.log(`the decoder took ${taken} of ${runs} mutated acknowledgements`);
  t.true(taken > runs / 10, `the decoder took ${taken} of ${runs} mutated acknowledgements`);
});

// Hand-written wire encodings: tags, varints and length-delimited fields.
function varint(value: bigint | number): number[] {
  let n = BigInt(value);
  const out: number[] = [];
  do {
    const low = Number(n & 0x7fn);
    n >>= 7n;
    out.push(n > 0n ? low | 0x80 : low);
  } while (n > 0n);
  return out;
}
const tag = (field: number, wire: number): number[] => varint((field << 3) | wire);
const num = (field: number, value: bigint | number): number[] => [...tag(field, 0), ...varint(value)];
const len = (field: number, ...body: number[][]): number[] => [
  ...tag(field, 2),
  ...varint(body.flat().length),
  ...body.flat(),
];
const str = (field: number, value: string): number[] => len(field, [...Buffer.from(value)]);
const ack = (...body: number[][]): Buffer => Buffer.from(len(5, ...body));
const snap = (...body: number[][]): number[] => len(4, ...body);
const regular = snap(str(1, 't1'), len(2, str(1, 'file:///a'), num(2, 7)), len(4, num(1, 3)), num(5, 1));
function nested(depth: number): number[] {
  return depth === 0 ? str(1, 'file:///p') : len(4, nested(depth - 1));
}

const IRREGULAR: [string, Buffer | Uint8Array][] = [
  ['bytes that are not a Buffer', Uint8Array.from(ack(num(1, 1), regular))],
  ['another body (a heartbeat)', Buffer.from(len(2, num(1, 5)))],
  ['no field at all', Buffer.alloc(0)],
  ['a second top-level field after the acknowledgement', Buffer.from([...ack(regular), ...len(2, num(1, 5))])],
  ['the acknowledgement twice', Buffer.from([...ack(num(1, 1)), ...ack(regular)])],
  ['an unknown top-level field', Buffer.from([...ack(regular), ...num(9, 1)])],
  ['an unknown field in the acknowledgement', ack(num(5, 1), regular)],
  ['an unknown field in a snapshot', ack(snap(str(1, 't1'), num(6, 1)))],
  ['an unknown field in a handle', ack(snap(len(2, num(8, 1))))],
  ['an unknown field in a position', ack(snap(len(3, num(3, 1))))],
  ['an unknown field in the metrics', ack(snap(len(4, num(9, 1))))],
  ['a group in a snapshot', ack(snap(tag(7, 3), tag(7, 4)))],
  ['request_id length-delimited (a packed scalar)', ack(len(1, varint(5)), regular)],
  ['task_id as a varint', ack(snap(num(1, 1)))],
  ['snapshots as a varint', ack(num(4, 1))],
  ['a metric as fixed64', ack(snap(len(4, [...tag(1, 1), 1, 0, 0, 0, 0, 0, 0, 0])))],
  ['a varint cut short at the end', ack(regular, [...tag(1, 0), 0x80])],
  ['a varint of eleven bytes', ack([...tag(1, 0), ...Array<number>(10).fill(0x80), 0x01])],
  ['a varint that is not minimal', ack([...tag(1, 0), 0x81, 0x00], regular)],
  ['a varint above 2^64', ack([...tag(1, 0), ...Array<number>(9).fill(0xff), 0x03])],
  ['a tag of two bytes', ack([0x88, 0x00, 0x01], regular)],
  ['a length past the end of the snapshot', ack([...tag(4, 2), 40, ...str(1, 't1')])],
  ['a string past the end of its message (protobuf.js cuts it)', ack(snap([...tag(1, 2), 9, 0x61, 0x62]))],
  ['bytes after the acknowledgement its length does not cover', Buffer.from([...ack(regular), 0x00])],
  ['the state twice', ack(snap(len(2, num(2, 1)), len(2, num(6, 1))))],
  ['the metrics twice', ack(snap(len(4, num(1, 1)), len(4, num(2, 1))))],
  ['task_id twice', ack(snap(str(1, 'a'), str(1, 'b')))],
  ['request_id twice', ack(num(1, 1), num(1, 2), regular)],
  ['an enum value above 2^31 - 1', ack(snap(num(5, 2 ** 31)))],
  ['an enum value above 2^32', ack(snap(num(5, 2 ** 32 + 1)))],
  ['a bool of 2', ack(snap(len(2, num(7, 2))))],
  ['a bool of 2^32 (false to protobuf.js)', ack(snap(len(2, num(7, 2 ** 32))))],
  ['shared handles nested too deep', ack(snap(len(2, nested(MAX_SHARED_DEPTH + 1))))],
];

test('every irregular form takes the generic path, which answers it as before', (t) => {
  for (const [name, bytes] of IRREGULAR) {
    t.is(decodeAcknowledgement(bytes), undefined, name);
    const buffer = Buffer.from(bytes);
    t.notThrows(() => answersAsBefore(buffer), name);
  }
  // The same messages without their irregularity are decoded.
  for (const bytes of [ack(num(1, 1), regular), ack(snap(len(2, nested(MAX_SHARED_DEPTH)))), ack()]) {
    t.not(decodeAcknowledgement(bytes), undefined);
    t.true(answersAsBefore(bytes));
  }
});

test('uint64 values convert as protobuf.js converts them, above 2^53 too', (t) => {
  for (const value of [...U64_EDGES, '9007199254740995', '9223372036854775807', '18446744073709551615']) {
    const bytes = ack(num(1, BigInt(value)), snap(len(3, num(2, BigInt(value)))));
    const decoded = decodeAcknowledgement(bytes);
    t.deepEqual(decoded?.request, generic(bytes), value);
    t.is(decoded?.request.acknowledge.requestId, Number(BigInt(value)), value);
  }
});

test('a negative enum value written as protobuf writes int32 stays the number', (t) => {
  const bytes = encode({ acknowledge: { snapshots: [{ snapshotType: -3, state: { compression: -(2 ** 31) } }] } });
  const decoded = decodeAcknowledgement(bytes);
  t.deepEqual(decoded?.request, generic(bytes));
  const type: unknown = decoded?.request.acknowledge.snapshots[0]?.snapshotType;
  t.is(type, -3);
});
