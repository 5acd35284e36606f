/**
 * Reading committed checkpoints back: a manifest verified against the
 * hashes of its root, and the summaries for listings.
 */
import { CkptError } from '../core/errors.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest__Output as Manifest } from '../gen/ckpt/v1/Manifest.js';
import { decodeStored, storeCodecs } from './codecs.js';
import { mapConcurrent } from './concurrency.js';
import { assembleManifest, corrupt, partHashes, type ManifestOrigin } from './manifest-parts.js';
import { getValue, listKeys, type StoreContext } from './store-context.js';
import type { EtcdCallContext } from './translate-error.js';

/**
 * The manifest of a retained checkpoint, or undefined if there is none.
 * Its parts are read at the revision of the root, so a checkpoint deleted
 * meanwhile still reads whole (until etcd compacts that revision). Throws
 * INTERNAL when a part is missing or any size or hash does not match.
 */
export async function readManifest(
  ctx: StoreContext,
  jobId: string,
  checkpointId: number,
): Promise<Manifest | undefined> {
  const origin: ManifestOrigin = { jobId, checkpointId };
  const context: EtcdCallContext = {
    operation: `read manifest of checkpoint ${checkpointId} of job ${jobId}`,
    jobId,
    checkpointId,
  };
  const rootKey = ctx.keys.root(jobId, checkpointId);
  const { kv, revision } = await getValue(ctx, rootKey, context);
  if (kv === undefined) return undefined;
  const codecs = storeCodecs();
  const root = decodeStored(codecs.manifestRoot, kv.value, rootKey, origin);
  const parts = new Map<string, Uint8Array | undefined>();
  await mapConcurrent(partHashes(root), ctx.options.partConcurrency, async (sha256) => {
    const part = await getValue(ctx, ctx.keys.part(jobId, sha256), context, revision);
    parts.set(sha256, part.kv?.value);
  });
  const encoded = assembleManifest(root, parts, origin);
  const manifest = decodeStored(codecs.manifest, encoded, rootKey, origin);
  if (manifest.jobId !== jobId || manifest.checkpointId !== checkpointId) {
    throw corrupt(origin, `it holds checkpoint ${manifest.checkpointId} of job ${manifest.jobId}`);
  }
  return manifest;
}

/** Summaries of the retained checkpoints of `jobId`, newest first, read at one revision. */
export async function listSummaries(ctx: StoreContext, jobId: string): Promise<CheckpointSummary[]> {
  const context: EtcdCallContext = { operation: `list checkpoints of job ${jobId}`, jobId };
  // Keys only: the roots beside the summaries may hold a whole manifest each.
  const listing = await listKeys(ctx, ctx.keys.checkpoints(jobId), context);
  const summaryKeys: { key: string; checkpointId: number }[] = [];
  for (const kv of listing.kvs) {
    const key = kv.key.toString();
    const parsed = ctx.keys.parse(key);
    if (parsed?.kind === 'summary') summaryKeys.push({ key, checkpointId: parsed.checkpointId });
  }
  summaryKeys.sort((a, b) => b.checkpointId - a.checkpointId);
  const summaries = await mapConcurrent(summaryKeys, ctx.options.partConcurrency, async ({ key, checkpointId }) => {
    const { kv } = await getValue(ctx, key, context, listing.revision);
    if (kv === undefined)
      throw new CkptError('INTERNAL', `summary ${key} vanished at the revision it was listed`, { jobId });
    return decodeStored(storeCodecs().summary, kv.value, key, { jobId, checkpointId });
  });
  return summaries;
}
