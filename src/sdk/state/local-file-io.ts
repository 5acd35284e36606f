/**
 * Streamed, verified file I/O of the local directory backend: atomic
 * writes (temporary file, flush, rename) and reads checked against a handle.
 * Both go one slice at a time, checking the abort signal between slices.
 * Errors are raised as they come; the backend translates them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CHECKSUM_PREFIX, formatChecksum, slices } from './checksum.js';
import { corruptSnapshotError } from './snapshot-errors.js';
import type { CheckedHandle } from './state-handle.js';

/** How a file is written or read. */
export interface FileIoOptions {
  /** Bytes per write, read and hash step. */
  sliceBytes: number;
  /** Flush the file and its directory entry before resolving a write. */
  fsync: boolean;
  /** Called before every step; throws to stop (an aborted signal, for instance). */
  checkpoint: () => void;
}

/**
 * Writes `bytes` to `path` atomically: to a temporary file beside it, then
 * flushed and renamed over `path`. Resolves with the `sha256:` checksum of
 * the bytes. On failure the temporary file is removed.
 */
export async function writeFileAtomically(path: string, bytes: Uint8Array, options: FileIoOptions): Promise<string> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  let file: FileHandle | undefined;
  try {
    file = await open(temporary, 'wx');
    const hash = createHash('sha256');
    for (const slice of slices(bytes, options.sliceBytes)) {
      options.checkpoint();
      hash.update(slice);
      await writeAll(file, slice);
    }
    if (options.fsync) await file.sync();
    await file.close();
    file = undefined;
    options.checkpoint();
    await rename(temporary, path);
    if (options.fsync) await syncDirectory(dirname(path));
    return formatChecksum(hash);
  } catch (err) {
    await file?.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Opening for a read never blocks and never follows a link at the end of
 * the path: a FIFO opened plainly would wait for a writer forever (and hold
 * a thread of the pool meanwhile).
 */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);

/**
 * Reads the file at `path` and checks it against `expected`: that it is a
 * regular file, its size, then its checksum while reading. Throws the
 * corrupt-snapshot error naming the uri when any differs; a missing file
 * surfaces as ENOENT.
 */
export async function readVerifiedFile(
  path: string,
  expected: CheckedHandle,
  options: Omit<FileIoOptions, 'fsync'>,
): Promise<Uint8Array> {
  let file: FileHandle;
  try {
    file = await open(path, READ_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw corruptSnapshotError(expected.uri, 'it is a link, not a regular file', {}, err);
    }
    throw err;
  }
  try {
    const stats = await file.stat();
    if (!stats.isFile()) throw corruptSnapshotError(expected.uri, 'it is not a regular file');
    if (stats.size !== expected.sizeBytes) {
      throw corruptSnapshotError(expected.uri, `it has ${stats.size} bytes, the handle says ${expected.sizeBytes}`);
    }
    const bytes = new Uint8Array(expected.sizeBytes);
    const checksum = await readInto(file, bytes, expected.uri, options);
    if (checksum !== `${CHECKSUM_PREFIX}${expected.digestHex}`) {
      throw corruptSnapshotError(
        expected.uri,
        `its checksum is ${checksum}, the handle says ${CHECKSUM_PREFIX}${expected.digestHex}`,
      );
    }
    return bytes;
  } finally {
    await file.close();
  }
}

/** Flushes a directory's entries (a rename, a new file) to the disk. */
export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/**
 * Fills `bytes` from the start of `file` slice by slice; returns the
 * checksum. Each slice is hashed while the next one is being read.
 */
async function readInto(
  file: FileHandle,
  bytes: Uint8Array,
  uri: string,
  options: Omit<FileIoOptions, 'fsync'>,
): Promise<string> {
  const hash = createHash('sha256');
  const readAt = (offset: number): Promise<{ bytesRead: number }> => {
    options.checkpoint();
    return file.read(bytes, offset, Math.min(options.sliceBytes, bytes.length - offset), offset);
  };
  let offset = 0;
  let reading = bytes.length > 0 ? readAt(0) : undefined;
  while (reading !== undefined) {
    const { bytesRead } = await reading;
    if (bytesRead === 0) throw corruptSnapshotError(uri, `it ended after ${offset} of ${bytes.length} bytes`);
    const slice = bytes.subarray(offset, offset + bytesRead);
    offset += bytesRead;
    reading = offset < bytes.length ? readAt(offset) : undefined;
    // A failed read is raised by the next await; until then, this slice is hashed.
    reading?.catch(() => {});
    hash.update(slice);
  }
  return formatChecksum(hash);
}

/** Writes all of `bytes` at the file's current position. */
async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await file.write(bytes, written, bytes.length - written);
    written += bytesWritten;
  }
}
