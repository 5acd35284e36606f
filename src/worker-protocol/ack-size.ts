/**
 * The size of acknowledgements, estimated without encoding them: a
 * worker's acknowledgements of one checkpoint are split into messages that
 * stay below the coordinator's message limit, however many tasks it runs.
 */
import type { StateHandle } from '../gen/ckpt/v1/StateHandle.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';

/**
 * Default largest estimated acknowledgement message: well below the
 * coordinator's default 64 MiB message limit and the 4 MiB default of
 * other gRPC implementations.
 */
export const DEFAULT_MAX_ACK_REQUEST_BYTES = 3 * 1024 * 1024;

/**
 * Most snapshots in one acknowledgement message. The coordinator decodes,
 * checks and records a message whole, in one turn of its event loop, at
 * tens of microseconds a snapshot: a worker of 6,250 tasks held it for
 * 150 ms and more, seconds on a loaded machine, where its workers' 4 s
 * keepalive ended their sessions. Runs of this many also go out while
 * the worker encodes the next, instead of after the last is encoded.
 */
export const MAX_ACK_SNAPSHOTS_PER_MESSAGE = 1000;

/** Upper bound of the encoded size of one snapshot entry. */
export function estimateSnapshotBytes(snapshot: TaskSnapshot): number {
  let bytes = 96 + (snapshot.taskId?.length ?? 0);
  if (snapshot.state !== undefined && snapshot.state !== null) bytes += handleBytes(snapshot.state);
  for (const p of snapshot.positions ?? []) bytes += 24 + Buffer.byteLength(p.input ?? '');
  return bytes;
}

function handleBytes(handle: StateHandle): number {
  let bytes = 32 + (handle.uri?.length ?? 0) + (handle.checksum?.length ?? 0);
  for (const shared of handle.shared ?? []) bytes += handleBytes(shared);
  return bytes;
}

/**
 * Splits snapshots into runs whose estimated size stays below `maxBytes`
 * (each run has at least one) and of at most `maxCount` snapshots.
 */
export function splitBySize<T extends TaskSnapshot>(
  snapshots: readonly T[],
  maxBytes: number,
  maxCount = MAX_ACK_SNAPSHOTS_PER_MESSAGE,
): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let size = 0;
  for (const s of snapshots) {
    const bytes = estimateSnapshotBytes(s);
    if (run.length > 0 && (size + bytes > maxBytes || run.length >= maxCount)) {
      runs.push(run);
      run = [];
      size = 0;
    }
    run.push(s);
    size += bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
