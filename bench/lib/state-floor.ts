/**
 * The floor of a restore: the same pieces read from the same store and
 * checked against their sha256 with the plainest code there is, all pieces
 * at once, nothing decoded. What a restore does beyond this is the SDK's.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ObjectStore } from '@nats-io/obj';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { parseObjectUri } from '../../src/sdk/state/object-store-uri.js';

/** Reads and verifies every piece; resolves with the bytes read. */
export type PlainRead = (pieces: readonly StateHandle__Output[]) => Promise<number>;

/** The floor of the local directory backend: `fs.readFile` and sha256 of each piece's file. */
export const readFilesPlainly: PlainRead = async (pieces) => {
  const sizes = await Promise.all(pieces.map(async (p) => verified(p, await readFile(fileURLToPath(p.uri)))));
  return sizes.reduce((a, b) => a + b, 0);
};

/** The floor of the object store backend: `getBlob` of @nats-io/obj and sha256 of each piece's object. */
export function readObjectsPlainly(store: ObjectStore): PlainRead {
  return async (pieces) => {
    const sizes = await Promise.all(
      pieces.map(async (p) => {
        const bytes = await store.getBlob(parseObjectUri(p.uri).name);
        if (bytes === null) throw new Error(`${p.uri} is missing`);
        return verified(p, bytes);
      }),
    );
    return sizes.reduce((a, b) => a + b, 0);
  };
}

/** The size of `bytes`, after checking them against the piece's size and checksum. */
function verified(piece: StateHandle__Output, bytes: Uint8Array): number {
  const checksum = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (bytes.length !== Number(piece.sizeBytes) || checksum !== piece.checksum) {
    throw new Error(`${piece.uri}: read ${bytes.length} bytes, ${checksum}; the handle says otherwise`);
  }
  return bytes.length;
}
