/**
 * Options of the local directory backend, and the one function that turns
 * them into a complete, validated configuration.
 */
import { resolve } from 'node:path';
import { silentLogger, type Logger } from '../../log/index.js';
import { SLICE_BYTES } from './checksum.js';
import { booleanOption, invalidOption, positiveInteger } from './option-checks.js';

/** Default bytes written, read and hashed per step: 1 MiB. */
export const DEFAULT_DIRECTORY_SLICE_BYTES = SLICE_BYTES;

/** Where and how the local directory backend keeps snapshots. */
export interface LocalDirectoryBackendOptions {
  /**
   * The directory holding the snapshots, as
   * `<dir>/<jobId>/<taskId>/<checkpointId>-<epoch>.snap`. A relative path
   * is resolved against the working directory. Created when missing.
   * Required.
   */
  dir: string;
  /**
   * Flush every snapshot and its directory entry to the disk before `put`
   * resolves. Without it a snapshot survives a crash of the process but
   * perhaps not one of the machine.
   * @default true
   */
  fsync?: boolean;
  /**
   * Bytes written, read and hashed per step; between steps the event loop
   * runs other work.
   * @default 1048576 (1 MiB)
   */
  sliceBytes?: number;
  /**
   * Logger; the backend logs with `component: 'state', backend: 'dir'`.
   * @default a silent logger
   */
  logger?: Logger;
}

/** `LocalDirectoryBackendOptions` with defaults applied and validated. */
export interface ResolvedLocalDirectoryBackendOptions {
  /** Absolute. */
  dir: string;
  fsync: boolean;
  sliceBytes: number;
  logger: Logger;
}

const BACKEND = 'dir';

/**
 * Applies the defaults and validates every option; throws a MALFORMED
 * `CkptError` naming the first option that is wrong.
 */
export function resolveLocalDirectoryBackendOptions(
  options: LocalDirectoryBackendOptions,
): ResolvedLocalDirectoryBackendOptions {
  const dir: unknown = options.dir;
  if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) {
    invalidOption(BACKEND, 'dir', `must be a non-empty path, got ${JSON.stringify(dir)}`);
  }
  return {
    dir: resolve(dir),
    fsync: booleanOption(BACKEND, 'fsync', options.fsync, true),
    sliceBytes: positiveInteger(BACKEND, 'sliceBytes', options.sliceBytes, DEFAULT_DIRECTORY_SLICE_BYTES),
    logger: options.logger ?? silentLogger(),
  };
}
