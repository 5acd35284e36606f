/**
 * The fuzz suite's view of the wire: every method it calls, and a protobuf
 * codec that writes what the typed clients cannot (uint64 values up to
 * 2^64-1, enum numbers the contract does not name) and reads a request the
 * way the coordinator will, so that the checks judge the message the
 * coordinator actually saw.
 */
import protobuf from 'protobufjs';
import { DESCRIPTOR_JSON } from '../../src/gen/descriptor.js';

/** How a method streams. */
export type MethodKind = 'unary' | 'server-stream' | 'bidi';

/** One RPC of the contract. */
export interface MethodInfo {
  /** The short name, e.g. `SubmitJob`. */
  readonly name: string;
  /** The gRPC path, e.g. `/ckpt.v1.Coordinator/SubmitJob`. */
  readonly path: string;
  /** The request type without package, e.g. `SubmitJobRequest`. */
  readonly requestType: string;
  readonly kind: MethodKind;
}

const COORDINATOR = '/ckpt.v1.Coordinator/';
const QUERY = '/ckpt.v1.CheckpointQuery/';

/** Every RPC of coordinator.proto and query.proto. */
export const METHODS: Readonly<Record<string, MethodInfo>> = Object.fromEntries(
  (
    [
      [COORDINATOR, 'SubmitJob', 'unary'],
      [COORDINATOR, 'GetJob', 'unary'],
      [COORDINATOR, 'CancelJob', 'unary'],
      [COORDINATOR, 'AcknowledgeCheckpoint', 'unary'],
      [COORDINATOR, 'DeclineCheckpoint', 'unary'],
      [COORDINATOR, 'TriggerCheckpoint', 'unary'],
      [COORDINATOR, 'RestoreJob', 'unary'],
      [COORDINATOR, 'Attach', 'bidi'],
      [QUERY, 'ListJobs', 'unary'],
      [QUERY, 'ListCheckpoints', 'unary'],
      [QUERY, 'GetCheckpoint', 'unary'],
      [QUERY, 'WatchCheckpoints', 'server-stream'],
      [QUERY, 'GetCheckpointStatistics', 'unary'],
    ] as const
  ).map(([service, name, kind]) => [
    name,
    { name, path: service + name, requestType: name === 'Attach' ? 'AttachRequest' : `${name}Request`, kind },
  ]),
);

/** A plain message object: what the generators build and `decode` returns. */
export type Message = { [field: string]: Value };

/** A field value: uint64 fields are bigints, enums numbers, maps objects of strings. */
export type Value = string | number | bigint | boolean | null | Message | Value[];

let root: protobuf.Root | undefined;

function types(): protobuf.Root {
  if (root === undefined) {
    root = protobuf.Root.fromJSON(JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace);
    root.resolveAll();
  }
  return root;
}

/** The protobuf type `ckpt.v1.<name>`. */
export function messageType(name: string): protobuf.Type {
  return types().lookupType(`ckpt.v1.${name}`);
}

/**
 * Encodes `message` as `ckpt.v1.<typeName>` without checking it: values
 * are written as given, bigints as 64-bit varints (wrapping modulo 2^64),
 * so the coordinator gets whatever a foreign client could send.
 */
export function encode(typeName: string, message: Message): Buffer {
  const type = messageType(typeName);
  return Buffer.from(type.encode(toWriterForm(type, message)).finish());
}

/**
 * Decodes bytes as `ckpt.v1.<typeName>` the way the coordinator does (the
 * same descriptor and library); uint64 values come back as bigints, enums
 * as numbers, absent fields as their defaults. Undefined for bytes that are
 * not a valid encoding.
 */
export function decode(typeName: string, bytes: Uint8Array): Message | undefined {
  const type = messageType(typeName);
  try {
    const object = type.toObject(type.decode(bytes), {
      longs: String,
      enums: Number,
      defaults: true,
      arrays: true,
      objects: true,
      oneofs: true,
    });
    return fromReaderForm(type, object);
  } catch {
    return undefined;
  }
}

function isLongField(field: protobuf.Field): boolean {
  return ['uint64', 'int64', 'fixed64', 'sint64', 'sfixed64'].includes(field.type);
}

function toLong(value: bigint): { low: number; high: number; unsigned: boolean } {
  const v = BigInt.asUintN(64, value);
  return { low: Number(v & 0xffffffffn) | 0, high: Number(v >> 32n) | 0, unsigned: true };
}

function toWriterForm(type: protobuf.Type, message: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message)) {
    const field = type.fields[key];
    if (field === undefined || value === null) continue;
    out[key] = convertOut(field, value);
  }
  return out;
}

function convertOut(field: protobuf.Field, value: Value): unknown {
  if (field.repeated && Array.isArray(value)) return value.map((v) => convertOne(field, v));
  return convertOne(field, value);
}

function convertOne(field: protobuf.Field, value: Value): unknown {
  if (isLongField(field)) return toLong(typeof value === 'bigint' ? value : BigInt(value as number));
  if (field.resolvedType instanceof protobuf.Type && typeof value === 'object' && value !== null) {
    return toWriterForm(field.resolvedType, value as Message);
  }
  return value;
}

function fromReaderForm(type: protobuf.Type, object: Message): Message {
  const out: Message = {};
  for (const [key, value] of Object.entries(object)) {
    const field = type.fields[key];
    if (field === undefined || value === null) {
      out[key] = value;
      continue;
    }
    const one = (v: Value): Value =>
      isLongField(field)
        ? BigInt(v as string)
        : field.resolvedType instanceof protobuf.Type && !field.map
          ? fromReaderForm(field.resolvedType, v as Message)
          : v;
    out[key] = field.repeated && Array.isArray(value) ? value.map(one) : one(value);
  }
  return out;
}

/** The name of value `n` of enum `ckpt.v1.<enumName>`, or undefined for a number it does not name. */
export function enumValueName(enumName: string, n: number): string | undefined {
  return types().lookupEnum(`ckpt.v1.${enumName}`).valuesById[n];
}
