/**
 * Where a state piece lives, read from its uri: a `nats-obj://` piece in a
 * bucket the coordinator reaches itself, or a `file://` piece on a worker's
 * machine that only the job's workers reach. Only names the SDK's backends
 * write count (`<jobId>/<taskId>/<checkpointId>-<epoch>`); anything else is
 * no piece the coordinator ever deletes.
 */
import {
  FILE_URI_SCHEME,
  NATS_OBJ_URI_SCHEME,
  parseObjectUri,
  parseSnapshotSegments,
  SNAPSHOT_FILE_EXTENSION,
  type SnapshotLocation,
} from '../sdk/state/index.js';

/** A piece's place and the snapshot its name belongs to. */
export type PiecePlace = SnapshotLocation & ({ kind: 'nats-obj'; bucket: string } | { kind: 'file' });

/** The place of a piece's uri; undefined for anything that is no snapshot piece of a known backend. */
export function placeOf(uri: string): PiecePlace | undefined {
  if (uri.startsWith(NATS_OBJ_URI_SCHEME)) return objectPlace(uri);
  if (uri.startsWith(FILE_URI_SCHEME)) return filePlace(uri);
  return undefined;
}

function objectPlace(uri: string): PiecePlace | undefined {
  try {
    const { bucket, name } = parseObjectUri(uri);
    const location = parseSnapshotSegments(name.split('/'), '');
    return location === undefined ? undefined : { ...location, kind: 'nats-obj', bucket };
  } catch {
    return undefined;
  }
}

function filePlace(uri: string): PiecePlace | undefined {
  let path: string;
  try {
    path = new URL(uri).pathname;
  } catch {
    return undefined;
  }
  const location = parseSnapshotSegments(path.split('/').slice(-3), SNAPSHOT_FILE_EXTENSION);
  return location === undefined ? undefined : { ...location, kind: 'file' };
}

/** What the coordinator has seen of where a job keeps its state. */
export class JobPlaces {
  /** Buckets its handles named. */
  readonly buckets = new Set<string>();
  /** Whether any of its handles named a file on a worker's machine. */
  files = false;

  /** Learns the places of `uris`. */
  note(uris: readonly string[]): void {
    for (const uri of uris) {
      // Once a file is known, another changes nothing: a commit of 100,000 file handles parses none of them.
      if (this.files && uri.startsWith(FILE_URI_SCHEME)) continue;
      const place = placeOf(uri);
      if (place?.kind === 'nats-obj') this.buckets.add(place.bucket);
      else if (place?.kind === 'file') this.files = true;
    }
  }
}
