/**
 * Savepoints in etcd: one record per savepoint under its job, holding the
 * manifest and the spec it was taken with, outside the job's checkpoints
 * so that retention never deletes it. A record is one etcd value: a
 * savepoint whose manifest does not fit one request is refused (OVERSIZED)
 * instead of being split.
 */
import { CkptError } from '../core/errors.js';
import type { LeaderGuard } from '../core/ports.js';
import type { Savepoint__Output as Savepoint } from '../gen/ckpt/v1/Savepoint.js';
import { decodeStored, encodeForStore, storeCodecs } from './codecs.js';
import { mapConcurrent } from './concurrency.js';
import { corruptJobRecord } from './corrupt-record.js';
import { deleteKeyOp, putOp, versionIs } from './etcd-ops.js';
import { unpad } from './keys.js';
import { assertGuardHeld, guardCompares, guardReadOps, validateGuard } from './leader-guard.js';
import { MAX_CHECKPOINT_KEYS } from './record-limits.js';
import { getValue, listKeys, sendTxn, type StoreContext } from './store-context.js';

/** Stores a savepoint (replacing none: a second one with the same id is refused with CHECKPOINT_COMPLETED). */
export async function putSavepoint(ctx: StoreContext, savepoint: Savepoint, guard?: LeaderGuard): Promise<void> {
  const { jobId, checkpointId } = savepointIds(savepoint);
  validateGuard(guard, { jobId });
  const key = ctx.keys.savepoint(jobId, checkpointId);
  const value = encodeForStore(storeCodecs().savepoint, savepoint, 'savepoint', { jobId, checkpointId });
  const context = { operation: `store savepoint ${checkpointId} of job ${jobId}`, jobId, checkpointId };
  const response = await sendTxn(
    ctx,
    {
      compare: [versionIs(key, 'Equal', 0), ...guardCompares(guard)],
      success: [putOp(key, Buffer.from(value))],
      failure: guardReadOps(guard),
    },
    context,
  );
  if (response.succeeded) return;
  assertGuardHeld(guard, response.responses[0], { jobId, checkpointId });
  throw new CkptError('CHECKPOINT_COMPLETED', `job ${jobId} already has savepoint ${checkpointId}`, {
    jobId,
    checkpointId,
  });
}

/** The savepoint, or undefined; a record that does not decode or names another one is corrupt. */
export async function readSavepoint(
  ctx: StoreContext,
  jobId: string,
  checkpointId: number,
): Promise<Savepoint | undefined> {
  const key = ctx.keys.savepoint(jobId, checkpointId);
  const context = { operation: `read savepoint ${checkpointId} of job ${jobId}`, jobId, checkpointId };
  const { kv } = await getValue(ctx, key, context);
  return kv === undefined ? undefined : decodeSavepoint(key, kv.value, jobId, checkpointId);
}

/** Every savepoint of the job, oldest first. */
export async function listSavepoints(ctx: StoreContext, jobId: string): Promise<Savepoint[]> {
  const prefix = ctx.keys.savepoints(jobId);
  const listing = await listKeys(
    ctx,
    prefix,
    { operation: `list savepoints of job ${jobId}`, jobId },
    MAX_CHECKPOINT_KEYS,
  );
  const ids = listing.kvs
    .map((kv) => unpad(kv.key.toString().slice(prefix.length)))
    .filter((id): id is number => id !== undefined)
    .sort((a, b) => a - b);
  const read = await mapConcurrent(ids, ctx.options.partConcurrency, (id) => readSavepoint(ctx, jobId, id));
  return read.filter((s): s is Savepoint => s !== undefined);
}

/** Deletes a savepoint's record; false when there was none. */
export async function deleteSavepoint(
  ctx: StoreContext,
  jobId: string,
  checkpointId: number,
  guard?: LeaderGuard,
): Promise<boolean> {
  validateGuard(guard, { jobId });
  const key = ctx.keys.savepoint(jobId, checkpointId);
  const context = { operation: `delete savepoint ${checkpointId} of job ${jobId}`, jobId, checkpointId };
  const response = await sendTxn(
    ctx,
    {
      compare: [versionIs(key, 'Greater', 0), ...guardCompares(guard)],
      success: [deleteKeyOp(key)],
      failure: guardReadOps(guard),
    },
    context,
  );
  if (response.succeeded) return true;
  assertGuardHeld(guard, response.responses[0], { jobId, checkpointId });
  return false;
}

function decodeSavepoint(key: string, bytes: Uint8Array, jobId: string, checkpointId: number): Savepoint {
  const savepoint = decodeStored(storeCodecs().savepoint, bytes, (problem, cause) =>
    corruptJobRecord(jobId, key, problem, cause),
  );
  const ref = savepoint.ref;
  const manifest = savepoint.manifest;
  if (ref?.jobId !== jobId || ref.checkpointId !== checkpointId || savepoint.spec === null || manifest === null) {
    throw corruptJobRecord(jobId, key, 'is not the savepoint its key names, or lacks its spec or manifest');
  }
  if (manifest.jobId !== jobId || manifest.checkpointId !== checkpointId) {
    throw corruptJobRecord(
      jobId,
      key,
      `holds the manifest of checkpoint ${manifest.checkpointId} of job ${manifest.jobId}`,
    );
  }
  return savepoint;
}

function savepointIds(savepoint: Savepoint): { jobId: string; checkpointId: number } {
  const jobId = savepoint.ref?.jobId ?? '';
  const checkpointId = savepoint.ref?.checkpointId ?? 0;
  if (jobId === '' || checkpointId <= 0)
    throw new CkptError('MALFORMED', 'a savepoint needs its job and checkpoint id');
  return { jobId, checkpointId };
}
