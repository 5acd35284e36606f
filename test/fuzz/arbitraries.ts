/**
 * Arbitrary messages of any ckpt.v1 type, built from the contract's
 * descriptor: every field optional, strings and numbers from `values.ts`
 * chosen by the field's name and type (ids from pools of ids the fixture
 * knows, URIs and checksums near the valid forms, epochs and checkpoint
 * ids near the fixture's), repeated fields short or very long.
 */
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { JOBS, WORKERS } from './fixture.js';
import {
  contextRef,
  enumValue,
  i32Value,
  idValue,
  longText,
  repeated,
  textValue,
  u32Value,
  u64Value,
  U64_EDGES,
} from './values.js';
import { messageType, type Value } from './wire.js';

/** Job ids a generator picks from; `victim` is the only fixture job it may cancel. */
export const JOB_POOL = [JOBS.main, JOBS.pending, JOBS.session, JOBS.first, JOBS.victim, 'nope'] as const;
/** Job ids CancelJob may name: canceling a fixture job would end the run. */
export const CANCEL_POOL = [JOBS.victim, 'nope'] as const;
/** Task ids a generator picks from: the fixture's, and one no job has. */
export const TASK_POOL = ['src-0', 'src-1', 'sink-0', 's-00', 'f-00', 's-z', 'ghost'] as const;
/** Worker ids a generator picks from: the simulated workers', and a stranger. */
export const WORKER_POOL = [WORKERS.main, WORKERS.pending, 'intruder'] as const;

const HEX64 = 'ab'.repeat(32);

/** State handle URIs: valid ones of each accepted scheme, other schemes, and wild strings. */
const uriValue = (short: boolean): fc.Arbitrary<Value | object> =>
  fc.oneof(
    fc.constantFrom('sim://fz-pending/src-0/1', 'file:///var/lib/ckpt/x', 'nats-obj://bucket/name'),
    fc.constantFrom('', 'http://example/x', 'javascript:alert(1)', 'sim:', 'file://', 'nouri', 'SIM://X'),
    fc.constantFrom('file:///é', 'file:///a b', 'file:///\n', 'sim://\0'),
    textValue(short),
  );

const checksumValue = (short: boolean): fc.Arbitrary<Value | object> =>
  fc.oneof(
    fc.constant(`sha256:${HEX64}`),
    fc.constantFrom('', 'md5:0', `sha256:${HEX64.toUpperCase()}`, `sha256:${HEX64}0`, 'sha256:', `sha1:${HEX64}`),
    textValue(short),
  );

const sizeValue: fc.Arbitrary<Value | object> = fc.oneof(
  fc.constantFrom(0n, 1n, 1024n, 2n ** 40n, 2n ** 40n + 1n),
  u64Value(),
);

const tokenValue = (short: boolean): fc.Arbitrary<Value | object> =>
  fc.oneof(contextRef(['pendingToken', 'mainToken'], false), fc.constantFrom('', 'forged-token'), textValue(short));

const pageTokenValue: fc.Arbitrary<Value | object> = fc.oneof(
  fc.constantFrom('', '1', '0', '-1', '9007199254740993', 'abc', '../etc', JOBS.main),
  idValue(JOB_POOL),
);

/** A map<string, string> field: few or many labels, short or (unless `short`) long keys and values. */
export function labelsValue(short: boolean): fc.Arbitrary<Value | object> {
  const few = fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 4 });
  if (short) return few;
  return fc.oneof(
    few,
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.oneof(fc.string({ unit: 'binary' }), longText), {
      maxKeys: 3,
    }),
    fc.constantFrom(65, 1_000).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']))),
  );
}

/** Per field name: the values to try. */
function byName(
  field: protobuf.Field,
  jobPool: readonly string[],
  short: boolean,
): fc.Arbitrary<Value | object> | undefined {
  switch (field.name) {
    case 'jobId':
      return idValue(jobPool, short);
    case 'taskId':
    case 'taskIds':
    case 'inputs':
      return idValue(TASK_POOL, short);
    case 'workerId':
      return idValue(WORKER_POOL, short);
    case 'sessionToken':
      return tokenValue(short);
    case 'epoch':
      return u64Value(['mainEpoch', 'pendingEpoch', 'sessionEpoch', 'firstEpoch']);
    case 'checkpointId':
    case 'snapshotCheckpointId':
      return u64Value(['pendingCheckpoint', 'mainLatest']);
    case 'uri':
      return uriValue(short);
    case 'checksum':
      return checksumValue(short);
    case 'sizeBytes':
    case 'stateSizeBytes':
      return sizeValue;
    case 'pageToken':
      return pageTokenValue;
    case 'message':
    case 'input':
      return textValue(short);
    default:
      return undefined;
  }
}

/** Per scalar type. */
function byType(field: protobuf.Field, short: boolean): fc.Arbitrary<Value | object> {
  if (field.resolvedType instanceof protobuf.Enum) {
    return enumValue(Math.max(...Object.values(field.resolvedType.values)));
  }
  switch (field.type) {
    case 'uint64':
    case 'int64':
      return u64Value();
    case 'uint32':
      return u32Value;
    case 'int32':
      return i32Value;
    case 'bool':
      return fc.boolean();
    case 'string':
      return textValue(short);
    default:
      return fc.constantFrom(...U64_EDGES);
  }
}

/**
 * Generation settings: the job ids to pick from, and `short` for the
 * element of a long list, which gets neither long texts nor long lists of
 * its own (the message stays within a few MiB).
 */
export interface GenOptions {
  jobPool: readonly string[];
  short: boolean;
}

const DEFAULT_GEN: GenOptions = { jobPool: JOB_POOL, short: false };

/** Values of one element of `field` (or of the field, when not repeated). */
export function elementArbitrary(field: protobuf.Field, depth: number, gen: GenOptions): fc.Arbitrary<Value | object> {
  if (field.map) return labelsValue(gen.short);
  if (field.resolvedType instanceof protobuf.Type) return messageArbitrary(field.resolvedType.name, depth + 1, gen);
  return byName(field, gen.jobPool, gen.short) ?? byType(field, gen.short);
}

/** Values of `field` as a whole: a repeated field gets a short list or many copies of one short element. */
export function fieldArbitrary(field: protobuf.Field, depth: number, gen: GenOptions): fc.Arbitrary<Value | object> {
  const element = elementArbitrary(field, depth, gen);
  if (!field.repeated || field.map) return element;
  const few = fc.array(element, { maxLength: gen.short ? 2 : 4 });
  if (gen.short) return few;
  const scalar = !(field.resolvedType instanceof protobuf.Type);
  const copies = repeated(elementArbitrary(field, depth, { ...gen, short: true }) as fc.Arbitrary<Value>, scalar);
  return fc.oneof({ arbitrary: few, weight: 6 }, { arbitrary: copies, weight: 1 });
}

/** Deepest nesting of generated messages (StateHandle nests itself). */
const MAX_DEPTH = 4;

/** A message of type `ckpt.v1.<typeName>` with any subset of its fields set. */
export function messageArbitrary(
  typeName: string,
  depth = 0,
  gen: GenOptions = DEFAULT_GEN,
): fc.Arbitrary<Partial<Record<string, Value | object>>> {
  if (depth > MAX_DEPTH) return fc.constant({});
  const type = messageType(typeName);
  // Below the second level long texts and lists come from mutations only: every field of a
  // snapshot's state handles being long at once makes messages of many MiB, slow to no purpose.
  const own = depth >= 2 ? { ...gen, short: true } : gen;
  const fields = Object.fromEntries(type.fieldsArray.map((f) => [f.name, fieldArbitrary(f, depth, own)]));
  return fc.record(fields, { requiredKeys: [] });
}

/** A place a mutation can change, with the values to put there. */
export interface Site {
  path: string;
  values: fc.Arbitrary<unknown>;
}

/**
 * Every field of `typeName` as a mutation site, and the fields of the
 * messages `template` sets (the first element of a list), down to nested
 * messages.
 */
export function mutationSites(
  typeName: string,
  template: Record<string, unknown>,
  gen: GenOptions = DEFAULT_GEN,
  prefix = '',
): Site[] {
  const type = messageType(typeName);
  return type.fieldsArray.flatMap((field) => {
    const path = prefix + field.name;
    const own: Site = { path, values: fieldArbitrary(field, 0, gen) };
    const value = template[field.name];
    const nested: unknown = Array.isArray(value) ? (value as unknown[])[0] : value;
    const inner =
      field.resolvedType instanceof protobuf.Type && !field.map && typeof nested === 'object' && nested !== null
        ? mutationSites(
            field.resolvedType.name,
            nested as Record<string, unknown>,
            gen,
            `${path}${Array.isArray(value) ? '.0' : ''}.`,
          )
        : [];
    return [own, ...inner];
  });
}
