/**
 * Listing and deleting the snapshot pieces of one job in a NATS object
 * store bucket, by uri. The object store backend does this for a worker,
 * and the coordinator for the buckets its jobs' handles name: one
 * implementation of what counts as a job's piece and what may be deleted.
 */
import type { ObjectInfo, ObjectStore, Objm } from '@nats-io/obj';
import { CkptError } from '../../core/errors.js';
import { checkId } from '../../core/validate.js';
import { callObjectStore } from './object-store-errors.js';
import { BUCKET_PATTERN } from './object-store-options.js';
import { objectUri, parseObjectUri } from './object-store-uri.js';
import { locateSnapshot, parseSnapshotSegments } from './snapshot-location.js';
import type { DiscardOutcome, ListedPiece } from './state-backend.js';

/** A listed piece with what the bucket knows of it besides. */
export interface ObjectPiece extends ListedPiece {
  sizeBytes: number;
}

/** Opens an existing bucket (never creates one); MALFORMED for a bad name, translated errors otherwise. */
export async function openObjectBucket(objm: Objm, bucket: string): Promise<ObjectStore> {
  if (!BUCKET_PATTERN.test(bucket)) throw new CkptError('MALFORMED', `${JSON.stringify(bucket)} is not a bucket name`);
  return callObjectStore({ operation: `open bucket ${bucket}` }, () => objm.open(bucket));
}

/**
 * Every live snapshot object of `jobId` in the bucket. The object store
 * cannot list by name prefix, so this reads the metadata of the whole bucket.
 */
export async function listObjectPieces(store: ObjectStore, bucket: string, jobId: string): Promise<ObjectPiece[]> {
  checkId(jobId, 'jobId');
  const infos = await callObjectStore({ jobId, operation: `list bucket ${bucket}` }, () => store.list());
  return infos.filter((info) => isPieceOf(info, jobId)).map((info) => pieceOf(bucket, info));
}

/**
 * Deletes the uris that name snapshot objects of `jobId` in `bucket`; every
 * other uri is left and reported, as is one whose deletion failed. A
 * missing object counts as deleted.
 */
export async function discardObjectPieces(
  store: ObjectStore,
  bucket: string,
  jobId: string,
  uris: readonly string[],
): Promise<DiscardOutcome> {
  checkId(jobId, 'jobId');
  const outcome: DiscardOutcome = { deleted: 0, left: [] };
  for (const uri of uris) {
    try {
      const name = objectNameOf(uri, bucket, jobId);
      await callObjectStore({ jobId, operation: `delete ${uri}` }, () => store.delete(name));
      outcome.deleted += 1;
    } catch (err) {
      outcome.left.push({ uri, why: CkptError.from(err).message });
    }
  }
  return outcome;
}

/** The object name of a snapshot uri of `jobId` in `bucket`; MALFORMED for anything else. */
function objectNameOf(uri: string, bucket: string, jobId: string): string {
  const location = parseObjectUri(uri);
  if (location.bucket !== bucket) throw new CkptError('MALFORMED', `${uri} is not in bucket ${bucket}`, { jobId });
  locateSnapshot(uri, location.name.split('/'), '', `bucket ${bucket}`, { jobId });
  return location.name;
}

function isPieceOf(info: ObjectInfo, jobId: string): boolean {
  return !info.deleted && parseSnapshotSegments(info.name.split('/'), '')?.jobId === jobId;
}

function pieceOf(bucket: string, info: ObjectInfo): ObjectPiece {
  const modifiedAtMs = Date.parse(info.mtime);
  return {
    uri: objectUri(bucket, info.name),
    // An unreadable time counts as now: such a piece is never taken for an old orphan.
    modifiedAtMs: Number.isFinite(modifiedAtMs) ? modifiedAtMs : Date.now(),
    sizeBytes: info.size,
  };
}
