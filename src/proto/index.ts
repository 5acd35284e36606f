/**
 * The ckpt.v1 contract at run time: one protobuf root, from which come the
 * codecs for the messages that travel outside gRPC (NATS control messages,
 * manifests in etcd) and the gRPC method definitions of the clients. It is
 * loaded from the contract `make gen` generated from `proto/`
 * (`src/gen/descriptor.ts`) with the same options as the server's package
 * definition (`./package-definition.ts`), so that the TypeScript types in
 * `src/gen/` describe all of them.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { DESCRIPTOR_JSON } from '../gen/descriptor.js';

export { descriptorJson, parseProtoFiles, PROTO_FILES, protoRoot } from './files.js';

/**
 * Options shared by proto-loader and the codecs. They must match the flags
 * that generate `src/gen/` (see the Makefile's `gen` target).
 */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

let root: protobuf.Root | undefined;

function loadRoot(): protobuf.Root {
  if (root === undefined) {
    const r = protobuf.Root.fromJSON(JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace);
    r.resolveAll();
    root = r;
  }
  return root;
}

/** Encodes and decodes one message type of ckpt.v1 outside gRPC. */
export interface Codec<In, Out> {
  encode(message: In): Uint8Array;
  /** Throws on bytes that are not a valid encoding of the message. */
  decode(bytes: Uint8Array): Out;
}

/** A codec for `ckpt.v1.<name>` with the loader's conversion options. */
export function codec<In, Out>(name: string): Codec<In, Out> {
  const type = loadRoot().lookupType(`ckpt.v1.${name}`);
  return {
    encode(message: In): Uint8Array {
      const converted = type.fromObject(message as unknown as Record<string, unknown>);
      const invalid = type.verify(converted);
      if (invalid !== null) throw new Error(`invalid ckpt.v1.${name}: ${invalid}`);
      return type.encode(converted).finish();
    },
    decode(bytes: Uint8Array): Out {
      return type.toObject(type.decode(bytes), LOADER_OPTIONS) as Out;
    },
  };
}

/**
 * Generates now the code protobufjs otherwise generates at the first use of
 * a message type (its encoder, decoder, verifier and converters), for
 * `ckpt.v1.<name>` of each of `names` and every message type their fields
 * hold: for a process built into a V8 startup snapshot, whose starts then
 * find it done. Only computation.
 */
export function prepareCodecs(names: readonly string[]): void {
  const prepared = new Set<protobuf.Type>();
  const prepare = (type: protobuf.Type): void => {
    if (prepared.has(type)) return;
    prepared.add(type);
    type.setup();
    for (const field of type.fieldsArray) {
      if (field.resolvedType instanceof protobuf.Type) prepare(field.resolvedType);
    }
  };
  for (const name of names) prepare(loadRoot().lookupType(`ckpt.v1.${name}`));
}

/**
 * The methods of service `ckpt.v1.<name>` as grpc-js calls them, with the
 * serializers proto-loader would build (same root, same options) and
 * without the descriptors only reflection reads.
 */
export function serviceDefinition(name: string): ServiceDefinition {
  const service = loadRoot().lookupService(`ckpt.v1.${name}`);
  const methods: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    const [request, response] = [method.resolvedRequestType, method.resolvedResponseType];
    if (request === null || response === null) throw new Error(`ckpt.v1.${name}.${method.name}: unresolved types`);
    methods[method.name] = {
      path: `/ckpt.v1.${name}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: method.name.charAt(0).toLowerCase() + method.name.slice(1),
    };
  }
  return methods;
}

function serializer(type: protobuf.Type): (value: unknown) => Buffer {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`cannot serialize an array as ${type.fullName}`);
    const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    // protobufjs writes Buffers under Node: no copy.
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => unknown {
  return (bytes) => type.toObject(type.decode(bytes), LOADER_OPTIONS);
}
