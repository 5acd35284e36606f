/**
 * The ckpt.v1 contract at run time: the gRPC package definition for
 * grpc-js, and protobuf codecs for the messages that travel outside gRPC
 * (NATS control messages, manifests in etcd). Both are loaded from the
 * contract `make gen` generated from `proto/` (`src/gen/descriptor.ts`)
 * with the same options, so that the TypeScript types in `src/gen/`
 * describe both.
 */
import * as protoLoader from '@grpc/proto-loader';
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

let packageDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The package definition for `grpc.loadPackageDefinition` and reflection,
 * from the descriptor `make gen` generated: reading it costs a process
 * start a third of parsing the `.proto` files.
 */
export function loadPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.fromJSON(JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace, LOADER_OPTIONS);
  return packageDefinition;
}

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
