/**
 * The `.proto` files of the ckpt.v1 contract and their parse: what
 * `make gen` turns into `src/gen/`, and what a test compares that with.
 * Nothing here reads `src/gen/`, so that `make gen` can run without it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** The `.proto` files of the contract, relative to the proto root. */
export const PROTO_FILES = [
  'ckpt/v1/types.proto',
  'ckpt/v1/coordinator.proto',
  'ckpt/v1/query.proto',
  'ckpt/v1/bus.proto',
  'ckpt/v1/storage.proto',
] as const;

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

/**
 * The contract parsed from `proto/` now: what `make gen` stores in
 * `src/gen/descriptor.ts`, and what a test compares it with.
 */
export function parseProtoFiles(): protobuf.Root {
  const base = protoRoot();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => join(base, target);
  r.loadSync([...PROTO_FILES], { keepCase: false });
  r.resolveAll();
  return r;
}

/** The JSON form of a parsed contract, as `src/gen/descriptor.ts` holds it. */
export function descriptorJson(root: protobuf.Root): string {
  return JSON.stringify(root.toJSON({ keepComments: false }));
}
