/**
 * Collection of manifest parts that no retained root names: those of
 * checkpoints that retention deleted, and those of refused or interrupted
 * commits.
 *
 * Concurrency: the coordinator serialises commits and collections of one
 * job, but a deposed leader may still run either while the new leader runs
 * the other, so neither relies on that. A collection reads the part keys,
 * the roots and `latest` at one revision, and deletes only in transactions
 * guarded by `latest` being unmodified since: every commit moves `latest`,
 * so a root committed after the read stops the collection instead of
 * losing its parts. The other way round, a commit compares the existence
 * of each part it names, so a collection that deleted a part between the
 * part's write and the commit makes the commit fail instead of tear.
 */
import { corruptManifest } from './checkpoint-checks.js';
import { decodeStored, storeCodecs } from './codecs.js';
import { mapConcurrent } from './concurrency.js';
import type { GarbageCollection } from '../core/ports.js';
import { deleteKeyOp, modRevisionIs } from './etcd-ops.js';
import { listKeys, getValue, sendTxn, type StoreContext } from './store-context.js';
import type { EtcdCallContext } from './translate-error.js';

/** Deletes the parts of `jobId` that no retained root names; says how many it deleted and left. */
export async function collectGarbage(ctx: StoreContext, jobId: string): Promise<GarbageCollection> {
  const context: EtcdCallContext = { operation: `collect garbage of job ${jobId}`, jobId };
  const listing = await listKeys(ctx, ctx.keys.job(jobId), context);
  const parts = new Map<string, string>();
  const roots: { key: string; checkpointId: number }[] = [];
  let latestModRevision = '0';
  for (const kv of listing.kvs) {
    const key = kv.key.toString();
    const parsed = ctx.keys.parse(key);
    if (parsed?.kind === 'part') parts.set(parsed.sha256, key);
    else if (parsed?.kind === 'root') roots.push({ key, checkpointId: parsed.checkpointId });
    else if (parsed?.kind === 'latest') latestModRevision = kv.mod_revision;
  }
  if (parts.size === 0) return { deleted: 0, remaining: 0 };
  const total = parts.size;
  for (const sha256 of await namedParts(ctx, jobId, roots, listing.revision)) parts.delete(sha256);
  const deleted = await deleteOrphans(ctx, jobId, [...parts.values()], latestModRevision, context);
  if (deleted > 0) ctx.logger.debug({ jobId, deleted }, 'deleted unreferenced manifest parts');
  return { deleted, remaining: total - deleted };
}

/** Hashes of every part the given roots name, read at `revision`. */
async function namedParts(
  ctx: StoreContext,
  jobId: string,
  roots: { key: string; checkpointId: number }[],
  revision: string,
): Promise<Set<string>> {
  const named = new Set<string>();
  await mapConcurrent(roots, ctx.options.partConcurrency, async ({ key, checkpointId }) => {
    const context: EtcdCallContext = { operation: `collect garbage of job ${jobId}`, jobId, checkpointId };
    const { kv } = await getValue(ctx, key, context, revision);
    if (kv === undefined) return;
    const origin = { jobId, checkpointId, rootKey: key, partKey: (sha256: string) => ctx.keys.part(jobId, sha256) };
    // An unreadable root throws here, so that nothing it may name is deleted.
    const root = decodeStored(storeCodecs().manifestRoot, kv.value, (problem, cause) =>
      corruptManifest(origin, key, problem, cause),
    );
    for (const part of root.parts) named.add(part.sha256);
  });
  return named;
}

/**
 * Deletes `keys` in transactions of at most `maxTxnOps` deletes, each
 * guarded by `latest` still having `latestModRevision`; stops at the first
 * refused one. Returns how many keys were deleted.
 */
async function deleteOrphans(
  ctx: StoreContext,
  jobId: string,
  keys: string[],
  latestModRevision: string,
  context: EtcdCallContext,
): Promise<number> {
  const batchSize = ctx.options.maxTxnOps;
  let deleted = 0;
  for (let start = 0; start < keys.length; start += batchSize) {
    const batch = keys.slice(start, start + batchSize);
    const response = await sendTxn(
      ctx,
      { compare: [modRevisionIs(ctx.keys.latest(jobId), latestModRevision)], success: batch.map(deleteKeyOp) },
      context,
    );
    if (!response.succeeded) {
      ctx.logger.debug(
        { jobId },
        'a checkpoint was committed during garbage collection; the rest waits for the next one',
      );
      return deleted;
    }
    deleted += batch.length;
  }
  return deleted;
}
