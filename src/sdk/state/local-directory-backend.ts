/**
 * Snapshots as files in a local directory:
 * `<dir>/<jobId>/<taskId>/<checkpointId>-<epoch>.snap`, written atomically
 * and addressed by `file://` uris. Suits a single machine, or a directory
 * every worker mounts. It reads nothing but such files: a uri elsewhere
 * (an absolute path outside the directory, `..`, a link leading out) or
 * naming something other than a regular file is refused without blocking.
 */
import { mkdir, readdir, realpath, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ErrorIds } from '../../core/errors.js';
import type { StateHandle__Output } from '../../gen/ckpt/v1/StateHandle.js';
import type { Logger } from '../../log/index.js';
import { callFs, errorCode, translateFsError } from './fs-errors.js';
import {
  resolveLocalDirectoryBackendOptions,
  type LocalDirectoryBackendOptions,
  type ResolvedLocalDirectoryBackendOptions,
} from './local-directory-options.js';
import { readVerifiedFile, syncDirectory, TEMPORARY_SUFFIX, writeFileAtomically } from './local-file-io.js';
import { OperationGate } from './operation-gate.js';
import { malformedHandleError, missingSnapshotError, throwIfAborted } from './snapshot-errors.js';
import { checkReleaseArguments, checkSnapshotKey, parseSnapshotName, snapshotName } from './snapshot-key.js';
import { locateSnapshot, type SnapshotOwner } from './snapshot-location.js';
import type { SnapshotKey, StateBackend } from './state-backend.js';
import { checkHandle, checkUriLength, stateHandle } from './state-handle.js';

/** The scheme of the uris this backend writes and reads. */
export const FILE_URI_SCHEME = 'file://';

/** Extension of a snapshot file. */
export const SNAPSHOT_FILE_EXTENSION = '.snap';

/** A `StateBackend` keeping snapshots in a local directory. */
export interface LocalDirectoryBackend extends StateBackend {
  /** The absolute directory the snapshots live under. */
  readonly dir: string;
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

  release(jobId: string, taskId: string, keep: ReadonlySet<string>, keepFrom: number): Promise<number> {
    return this.#gate.run(() => this.#release(jobId, taskId, keep, keepFrom));
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

  async #release(jobId: string, taskId: string, keep: ReadonlySet<string>, keepFrom: number): Promise<number> {
    checkReleaseArguments(jobId, taskId, keepFrom);
    const ids = { jobId, taskId };
    const taskDir = join(this.dir, jobId, taskId);
    const names = await this.#list(taskDir, ids);
    let released = 0;
    for (const name of names) {
      const kind = releasable(name, keepFrom);
      if (kind === undefined) continue;
      const path = join(taskDir, name);
      if (kind === 'snapshot' && keep.has(pathToFileURL(path).href)) continue;
      const removed = await callFs({ ...ids, operation: `delete ${path}` }, () => removeFile(path));
      if (removed && kind === 'snapshot') released++;
    }
    this.#logger.debug({ ...ids, keepFrom, released }, 'snapshots released');
    return released;
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

/**
 * Whether a directory entry may go: a snapshot or a leftover temporary file
 * of a checkpoint below `keepFrom`. Anything else is left alone.
 */
function releasable(name: string, keepFrom: number): 'snapshot' | 'temporary' | undefined {
  const temporary = TEMPORARY_SUFFIX.test(name);
  const base = temporary ? name.replace(TEMPORARY_SUFFIX, '') : name;
  if (!base.endsWith(SNAPSHOT_FILE_EXTENSION)) return undefined;
  const parsed = parseSnapshotName(base.slice(0, -SNAPSHOT_FILE_EXTENSION.length));
  if (parsed === undefined || parsed.checkpointId >= keepFrom) return undefined;
  return temporary ? 'temporary' : 'snapshot';
}

/** Deletes a file; false when it was already gone. */
async function removeFile(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw err;
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
