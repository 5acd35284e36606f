/**
 * Where a backend's own snapshots are, checked before a handle is read: a
 * handle comes from a restore command, that is from what some worker
 * acknowledged, and is not trusted. A snapshot lives at
 * `<jobId>/<taskId>/<checkpointId>-<epoch><suffix>` below the backend's
 * directory or in its bucket; anything else is refused, and so is another
 * job's snapshot when the reader names its own job.
 */
import { ID_PATTERN } from '../../core/validate.js';
import { malformedHandleError } from './snapshot-errors.js';
import { parseSnapshotName, type SnapshotName } from './snapshot-key.js';

/** The job a `get` reads for: a backend refuses the snapshots of any other. */
export interface SnapshotOwner {
  jobId: string;
  /**
   * Another job whose snapshots may be read as well: the job of the
   * savepoint this job started from, named by the coordinator's restore.
   */
  sourceJobId?: string;
}

/** A snapshot's place, parsed from the segments of its path or object name. */
export interface SnapshotLocation extends SnapshotName {
  jobId: string;
  taskId: string;
}

/**
 * Parses `[jobId, taskId, <checkpointId>-<epoch><suffix>]`; undefined for
 * anything else (more or fewer segments, an invalid id, another name).
 */
export function parseSnapshotSegments(segments: readonly string[], suffix: string): SnapshotLocation | undefined {
  if (segments.length !== 3) return undefined;
  const [jobId, taskId, file] = segments as [string, string, string];
  if (!ID_PATTERN.test(jobId) || !ID_PATTERN.test(taskId) || !file.endsWith(suffix)) return undefined;
  const name = parseSnapshotName(file.slice(0, file.length - suffix.length));
  return name === undefined ? undefined : { jobId, taskId, ...name };
}

/**
 * The location of `uri` from its segments below the backend's root;
 * throws MALFORMED naming the uri when it is no snapshot of the backend,
 * or one of another job than `owner`'s.
 */
export function locateSnapshot(
  uri: string,
  segments: readonly string[],
  suffix: string,
  root: string,
  owner: SnapshotOwner | undefined,
): SnapshotLocation {
  const location = parseSnapshotSegments(segments, suffix);
  if (location === undefined) throw malformedHandleError(uri, `is not a snapshot of this backend (${root})`);
  if (owner !== undefined && location.jobId !== owner.jobId && location.jobId !== (owner.sourceJobId ?? owner.jobId)) {
    throw malformedHandleError(uri, `is a snapshot of job ${location.jobId}, not of job ${owner.jobId}`);
  }
  return location;
}

/**
 * The job and task a piece's uri names by its last three path segments
 * (`…/<jobId>/<taskId>/<name>`, as every backend names pieces); undefined
 * for a uri shaped otherwise. A hint for deciding what to build on, not a
 * check: reading still goes through the backend's `locateSnapshot`.
 */
export function pieceOwner(uri: string): { jobId: string; taskId: string } | undefined {
  const segments = uri.split('/');
  const jobId = segments.at(-3);
  const taskId = segments.at(-2);
  if (jobId === undefined || taskId === undefined || !ID_PATTERN.test(jobId) || !ID_PATTERN.test(taskId))
    return undefined;
  return { jobId, taskId };
}
