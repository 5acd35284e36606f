/**
 * Snapshots as files in a local directory:
 * `<dir>/<jobId>/<taskId>/<checkpointId>-<epoch>.snap`, written atomically
 * and addressed by `file://` uris. Suits a single machine, or a directory
 * every worker mounts. It reads nothing but such files: a uri elsewhere
 * (an absolute path outside the directory, `..`, a link leading out) or
 * naming something other than a regular file is refused without blocking.
 */
import { lstat, mkdir, readdir, realpath, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CkptError, type ErrorIds } from '../../core/errors.js';
import { checkId, ID_PATTERN } from '../../core/validate.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import type { Logger } from '../../log/index.js';
import { callFs, errorCode, translateFsError } from './fs-errors.js';
import {
  resolveLocalDirectoryBackendOptions,
  type LocalDirectoryBackendOptions,
  type ResolvedLocalDirectoryBackendOptions,
} from './local-directory-options.js';
import { readVerifiedFile, syncDirectory, writeFileAtomically } from './local-file-io.js';
import { OperationGate } from './operation-gate.js';
import { malformedHandleError, missingSnapshotError, throwIfAborted } from './snapshot-errors.js';
import { checkSnapshotKey, snapshotName } from './snapshot-key.js';
import { locateSnapshot, parseSnapshotSegments, type SnapshotOwner } from './snapshot-location.js';
import type { DiscardOutcome, ListedPiece, SnapshotKey, StateBackend } from './state-backend.js';
import { checkHandle, checkUriLength, stateHandle } from './state-handle.js';

/** The scheme of the uris this backend writes and reads. */
export const FILE_URI_SCHEME = 'file://';

/** Extension of a snapshot file. */
export const SNAPSHOT_FILE_EXTENSION = '.snap';
/** A temporary file an upload writes before it renames it into place (`local-file-io.ts`). */
const TEMPORARY_PATTERN = /^(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\.snap\.[0-9a-f]{12}\.tmp$/;

/** A `StateBackend` keeping snapshots in a local directory. */
export interface LocalDirectoryBackend extends StateBackend {
  /** The absolute directory the snapshots live under. */
  readonly dir: string;
  discardStaleUploads(jobId: string, olderThanMs: number): Promise<{ deleted: number; bytes: number }>;
}

/**
 * Creates the directory when missing and returns a backend keeping
 * snapshots in it. Rejects with MALFORMED for bad options and with the
 * translated file system error when the directory cannot be created.
 */
export async function createLocalDirectoryBackend(
  options: LocalDirectoryBackendOptions,
): Promise<LocalDirectoryBackend> {
  const resolved = resolveLocalDirectoryBackendOptions(options);
  await callFs({ operation: `create directory ${resolved.dir}` }, () => mkdir(resolved.dir, { recursive: true }));
  return new DirectoryBackend(resolved);
}

class DirectoryBackend implements LocalDirectoryBackend {
  readonly dir: string;
  readonly #options: ResolvedLocalDirectoryBackendOptions;
  readonly #logger: Logger;
  readonly #gate = new OperationGate('dir');

  constructor(options: ResolvedLocalDirectoryBackendOptions) {
    this.dir = options.dir;
    this.#options = options;
    this.#logger = options.logger.child({ component: 'state', backend: 'dir' });
  }

  put(key: SnapshotKey, bytes: Uint8Array, signal?: AbortSignal): Promise<StateHandle__Output> {
    return this.#gate.run(() => this.#put(key, bytes, signal));
  }

  get(handle: StateHandle__Output, signal?: AbortSignal, owner?: SnapshotOwner): Promise<Uint8Array> {
    return this.#gate.run(() => this.#get(handle, signal, owner));
  }

  discard(jobId: string, uris: readonly string[]): Promise<DiscardOutcome> {
    return this.#gate.run(() => this.#discard(jobId, uris));
  }

  listPieces(jobId: string): Promise<ListedPiece[]> {
    return this.#gate.run(() => this.#listPieces(jobId));
  }

  discardStaleUploads(jobId: string, olderThanMs: number): Promise<{ deleted: number; bytes: number }> {
    return this.#gate.run(() => this.#discardStaleUploads(jobId, olderThanMs));
  }

  close(): Promise<void> {
    return this.#gate.close();
  }

  async #put(key: SnapshotKey, bytes: Uint8Array, signal: AbortSignal | undefined): Promise<StateHandle__Output> {
    const ids = checkSnapshotKey(key);
    const taskDir = join(this.dir, key.jobId, key.taskId);
    const path = join(taskDir, `${snapshotName(key)}${SNAPSHOT_FILE_EXTENSION}`);
    const uri = pathToFileURL(path).href;
    checkUriLength(uri, ids);
    throwIfAborted(signal, 'put', uri, ids);
    await callFs({ ...ids, operation: `create directory ${taskDir}` }, () => this.#makeDirectory(taskDir));
    const { sliceBytes, fsync } = this.#options;
    const checkpoint = (): void => throwIfAborted(signal, 'put', uri, ids);
    const checksum = await callFs({ ...ids, operation: `write snapshot ${uri}` }, () =>
      writeFileAtomically(path, bytes, { sliceBytes, fsync, checkpoint }),
    );
    this.#logger.debug({ ...ids, uri, sizeBytes: bytes.length }, 'snapshot stored');
    return stateHandle(uri, bytes.length, checksum);
  }

  /** Creates `taskDir` and, with fsync, makes the new directory entries durable. */
  async #makeDirectory(taskDir: string): Promise<void> {
    const created = await mkdir(taskDir, { recursive: true });
    if (created === undefined || !this.#options.fsync) return;
    for (let dir = taskDir; dir !== dirname(created); dir = dirname(dir)) await syncDirectory(dirname(dir));
  }

  async #get(
    handle: StateHandle__Output,
    signal: AbortSignal | undefined,
    owner: SnapshotOwner | undefined,
  ): Promise<Uint8Array> {
    const expected = checkHandle(handle, FILE_URI_SCHEME);
    const path = this.#locate(expected.uri, owner);
    const checkpoint = (): void => throwIfAborted(signal, 'get', expected.uri);
    try {
      const real = await this.#within(path, expected.uri);
      return await readVerifiedFile(real, expected, { sliceBytes: this.#options.sliceBytes, checkpoint });
    } catch (err) {
      if (errorCode(err) === 'ENOENT') throw missingSnapshotError(expected.uri, {}, err);
      throw translateFsError(err, { operation: `read snapshot ${expected.uri}` });
    }
  }

  /**
   * The path of a uri this backend wrote: a snapshot file of its own
   * directory, spelled as `put` spells it (no `..`, no other spelling).
   */
  #locate(uri: string, owner: SnapshotOwner | undefined): string {
    const path = pathOfUri(uri);
    const rel = relative(this.dir, path);
    const inside = rel !== '' && !isAbsolute(rel) && rel.split(sep)[0] !== '..';
    locateSnapshot(uri, inside ? rel.split(sep) : [], SNAPSHOT_FILE_EXTENSION, this.dir, owner);
    if (pathToFileURL(path).href !== uri) throw malformedHandleError(uri, 'is not spelled as this backend writes it');
    return path;
  }

  /** The real path of `path`, refused when a link leads it out of the directory. */
  async #within(path: string, uri: string): Promise<string> {
    const [real, root] = await Promise.all([realpath(path), realpath(this.dir)]);
    if (!real.startsWith(`${root}${sep}`)) throw malformedHandleError(uri, `leads out of ${this.dir}`);
    return real;
  }

  async #discard(jobId: string, uris: readonly string[]): Promise<DiscardOutcome> {
    const owner = { jobId: checkId(jobId, 'jobId') };
    const outcome: DiscardOutcome = { deleted: 0, left: [] };
    for (const uri of uris) {
      try {
        await this.#delete(uri, owner);
        outcome.deleted += 1;
      } catch (err) {
        outcome.left.push({ uri, why: CkptError.from(err).message });
      }
    }
    if (outcome.deleted > 0) this.#logger.debug({ jobId, deleted: outcome.deleted }, 'snapshots discarded');
    return outcome;
  }

  /** Deletes one snapshot file of `owner`'s job in this directory; a missing one is no error. */
  async #delete(uri: string, owner: SnapshotOwner): Promise<void> {
    const path = this.#locate(uri, owner);
    try {
      await unlink(await this.#within(path, uri));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return;
      throw translateFsError(err, { jobId: owner.jobId, operation: `delete ${uri}` });
    }
  }

  async #listPieces(jobId: string): Promise<ListedPiece[]> {
    const ids = { jobId: checkId(jobId, 'jobId') };
    const jobDir = join(this.dir, jobId);
    const pieces: ListedPiece[] = [];
    for (const taskId of await this.#list(jobDir, ids)) {
      if (!ID_PATTERN.test(taskId)) continue;
      const taskDir = join(jobDir, taskId);
      for (const name of await this.#list(taskDir, ids)) {
        if (parseSnapshotSegments([jobId, taskId, name], SNAPSHOT_FILE_EXTENSION) === undefined) continue;
        const piece = await pieceAt(join(taskDir, name));
        if (piece !== undefined) pieces.push(piece);
      }
    }
    return pieces;
  }

  /** Deletes the job's temporary upload files (`<piece>.<hex>.tmp`) last written before `olderThanMs` ago. */
  async #discardStaleUploads(jobId: string, olderThanMs: number): Promise<{ deleted: number; bytes: number }> {
    const ids = { jobId: checkId(jobId, 'jobId') };
    const jobDir = join(this.dir, jobId);
    const before = Date.now() - olderThanMs;
    const gone = { deleted: 0, bytes: 0 };
    for (const taskId of await this.#list(jobDir, ids)) {
      if (!ID_PATTERN.test(taskId)) continue;
      const taskDir = join(jobDir, taskId);
      for (const name of await this.#list(taskDir, ids)) {
        if (!TEMPORARY_PATTERN.test(name)) continue;
        const path = join(taskDir, name);
        const stats = await lstat(path).catch(() => undefined);
        if (stats === undefined || !stats.isFile() || stats.mtimeMs >= before) continue;
        await unlink(path).then(
          () => {
            gone.deleted += 1;
            gone.bytes += stats.size;
          },
          (err: unknown) => this.#logger.warn({ err, path }, 'stale upload not deleted'),
        );
      }
    }
    return gone;
  }

  /** The entries of a task's directory; none when it does not exist. */
  async #list(taskDir: string, ids: ErrorIds): Promise<string[]> {
    try {
      return await readdir(taskDir);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw translateFsError(err, { ...ids, operation: `list ${taskDir}` });
    }
  }
}

/** A regular file as a listed piece; undefined when it is gone or not a regular file. */
async function pieceAt(path: string): Promise<ListedPiece | undefined> {
  try {
    const stats = await lstat(path);
    return stats.isFile() ? { uri: pathToFileURL(path).href, modifiedAtMs: stats.mtimeMs } : undefined;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw translateFsError(err, { operation: `inspect ${path}` });
  }
}

/** The absolute path a `file://` uri names; MALFORMED for anything else. */
function pathOfUri(uri: string): string {
  try {
    return fileURLToPath(uri);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw malformedHandleError(uri, `is not a local file uri: ${detail}`);
  }
}
