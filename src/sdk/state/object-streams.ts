/**
 * The byte streams between the object store backend and the object store
 * client: snapshot bytes offered one chunk at a time, and an object read
 * back and verified against its handle.
 */
import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ObjectResult } from '@nats-io/obj';
import { CkptError } from '../../core/errors.js';
import { CHECKSUM_PREFIX, formatChecksum, SLICE_BYTES, slices } from './checksum.js';
import { corruptSnapshotError } from './snapshot-errors.js';
import type { CheckedHandle } from './state-handle.js';

/** What the object store client says when an object's chunks do not match its own digest. */
const CLIENT_DIGEST_MISMATCH = 'digests do not match';

/**
 * A stream offering `bytes` in views of at most `chunkBytes`, pulled one
 * at a time; `onChunk` sees every view before it is offered and may throw
 * to fail the stream (an aborted signal, for instance).
 */
export function chunkStream(
  bytes: Uint8Array,
  chunkBytes: number,
  onChunk: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  const chunks = slices(bytes, chunkBytes);
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.next();
      if (next.done === true) {
        controller.close();
        return;
      }
      onChunk(next.value);
      controller.enqueue(next.value);
    },
  });
}

/**
 * Reads an object into one buffer of the expected size, hashing as it
 * goes, and checks size and checksum. `checkpoint` is called before and
 * after every chunk and throws to stop reading; an abort of `signal` also
 * ends a read that is waiting, after which `checkpoint` throws. A read
 * that waits more than `chunkTimeoutMs` for its next chunk fails with
 * UNAVAILABLE: the client keeps waiting on a consumer that stalled or lost
 * its connection, and would hold the caller (and its process) forever.
 * Errors of the client other than a digest mismatch are thrown as they come.
 */
export async function readVerifiedObject(
  result: ObjectResult,
  expected: CheckedHandle,
  checkpoint: () => void,
  chunkTimeoutMs: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  // The client rejects `error` when the transfer fails; observe it at once so that no rejection goes unhandled.
  const transfer: Promise<unknown> = result.error.then(
    (err) => err,
    (err: unknown) => err,
  );
  const reader = result.data.getReader();
  const stop = (): void => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    const bytes = await readAll(reader, expected, checkpoint, chunkTimeoutMs);
    const failure = await transfer;
    if (failure !== null && failure !== undefined) {
      throw failure instanceof Error ? failure : new Error('object transfer failed', { cause: failure });
    }
    return bytes;
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    if (err instanceof Error && err.message.includes(CLIENT_DIGEST_MISMATCH)) {
      throw corruptSnapshotError(expected.uri, 'its chunks do not match the object store digest', {}, err);
    }
    throw err;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

async function readAll(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  expected: CheckedHandle,
  checkpoint: () => void,
  chunkTimeoutMs: number,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(expected.sizeBytes);
  const hash = createHash('sha256');
  let offset = 0;
  let sinceTurn = 0;
  for (;;) {
    // Chunks the client has buffered arrive as microtasks; let other work run between slices.
    if (sinceTurn >= SLICE_BYTES) {
      sinceTurn = 0;
      await nextTurn();
    }
    checkpoint();
    const { done, value } = await readWithin(reader, chunkTimeoutMs, expected.uri, offset);
    checkpoint();
    if (done) break;
    sinceTurn += value.length;
    if (offset + value.length > bytes.length) {
      throw corruptSnapshotError(expected.uri, `it has more than the ${bytes.length} bytes the handle says`);
    }
    bytes.set(value, offset);
    hash.update(value);
    offset += value.length;
  }
  if (offset !== bytes.length) {
    throw corruptSnapshotError(expected.uri, `it has ${offset} bytes, the handle says ${bytes.length}`);
  }
  const checksum = formatChecksum(hash);
  const wanted = `${CHECKSUM_PREFIX}${expected.digestHex}`;
  if (checksum !== wanted) {
    throw corruptSnapshotError(expected.uri, `its checksum is ${checksum}, the handle says ${wanted}`);
  }
  return bytes;
}

/** The next chunk, or UNAVAILABLE when none arrives within `timeoutMs`. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  timeoutMs: number,
  uri: string,
  offset: number,
): Promise<Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new CkptError('UNAVAILABLE', `read of ${uri} stalled: no chunk after byte ${offset} within ${timeoutMs} ms`, {
            retryable: true,
          }),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([reader.read(), stalled]);
  } finally {
    clearTimeout(timer);
  }
}
