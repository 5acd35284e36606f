/**
 * Uris of snapshots in a NATS object store: `nats-obj://<bucket>/<name>`,
 * where a snapshot's name is `<jobId>/<taskId>/<checkpointId>-<epoch>`.
 */
import { BUCKET_PATTERN } from './object-store-options.js';
import { malformedHandleError } from './snapshot-errors.js';
import { snapshotName } from './snapshot-key.js';
import type { SnapshotKey } from './state-backend.js';

/** The scheme of the uris the object store backend writes and reads. */
export const NATS_OBJ_URI_SCHEME = 'nats-obj://';

/** Where an object lives. */
export interface ObjectLocation {
  bucket: string;
  name: string;
}

/** `<jobId>/<taskId>/<checkpointId>-<epoch>`: the object name of a snapshot. */
export function objectName(key: SnapshotKey): string {
  return `${taskPrefix(key.jobId, key.taskId)}${snapshotName(key)}`;
}

/** `<jobId>/<taskId>/`: what the object names of a task's snapshots start with. */
export function taskPrefix(jobId: string, taskId: string): string {
  return `${jobId}/${taskId}/`;
}

/** `nats-obj://<bucket>/<name>`. */
export function objectUri(bucket: string, name: string): string {
  return `${NATS_OBJ_URI_SCHEME}${bucket}/${name}`;
}

/** The bucket and name of a `nats-obj://` uri; MALFORMED for anything else. */
export function parseObjectUri(uri: string): ObjectLocation {
  if (!uri.startsWith(NATS_OBJ_URI_SCHEME)) throw malformedHandleError(uri, `is not a ${NATS_OBJ_URI_SCHEME} uri`);
  const rest = uri.slice(NATS_OBJ_URI_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const name = slash < 0 ? '' : rest.slice(slash + 1);
  if (!BUCKET_PATTERN.test(bucket))
    throw malformedHandleError(uri, `names an invalid bucket ${JSON.stringify(bucket)}`);
  if (name === '') throw malformedHandleError(uri, 'names no object');
  return { bucket, name };
}
