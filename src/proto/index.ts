/**
 * The ckpt.v1 contract at run time: the gRPC package definition for
 * grpc-js, and protobuf codecs for the messages that travel outside gRPC
 * (NATS control messages, manifests in etcd). Both are loaded from the same
 * `.proto` files with the same options, so that the TypeScript types in
 * `src/gen/` describe both.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** The `.proto` files of the contract, relative to the proto root. */
export const PROTO_FILES = [
  'ckpt/v1/types.proto',
  'ckpt/v1/coordinator.proto',
  'ckpt/v1/query.proto',
  'ckpt/v1/bus.proto',
  'ckpt/v1/storage.proto',
] as const;

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

/** Finds the repository's `proto/` folder from this module, in src or dist. */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('proto/ folder not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

let packageDefinition: protoLoader.PackageDefinition | undefined;

/** The package definition for `grpc.loadPackageDefinition` and reflection. */
export function loadPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync([...PROTO_FILES], {
    ...LOADER_OPTIONS,
    includeDirs: [protoRoot()],
  });
  return packageDefinition;
}

let root: protobuf.Root | undefined;

function loadRoot(): protobuf.Root {
  if (root === undefined) {
    const base = protoRoot();
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => join(base, target);
    r.loadSync([...PROTO_FILES], { keepCase: false });
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
