/**
 * Reading committed checkpoints back: a manifest bounded and verified
 * against its root, and the summaries for listings. Everything read is
 * checked before it is used (see `checkpoint-checks.ts`).
 */
import type { CheckpointSummary__Output as CheckpointSummary } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest__Output as Manifest } from '../gen/ckpt/v1/Manifest.js';
import type { ManifestRoot__Output as ManifestRoot } from '../gen/ckpt/v1/ManifestRoot.js';
import { checkManifest, checkRoot, checkSummary, corruptManifest, type ManifestOrigin } from './checkpoint-checks.js';
import { decodeStored, storeCodecs } from './codecs.js';
import { mapConcurrent } from './concurrency.js';
import { CorruptRecordError, corruptJobRecord } from './corrupt-record.js';
import { assembleManifest } from './manifest-parts.js';
import { MAX_CHECKPOINT_KEYS } from './record-limits.js';
import { getValue, listKeys, type StoreContext } from './store-context.js';
import type { EtcdCallContext } from './translate-error.js';

/**
 * The manifest of a retained checkpoint, or undefined if there is none.
 * The root is checked against `maxManifestBytes` and for consistent part
 * sizes before any part is read; each part is refused as soon as it is
 * read with another size than recorded. Its parts are read at the revision
 * of the root, so a checkpoint deleted meanwhile still reads whole (until
 * etcd compacts that revision). Throws OVERSIZED for a manifest above
 * `maxManifestBytes`, and a `CorruptRecordError` (INTERNAL) naming the key
 * when a part is missing or anything does not match.
 */
export async function readManifest(
  ctx: StoreContext,
  jobId: string,
  checkpointId: number,
): Promise<Manifest | undefined> {
  const { keys } = ctx;
  const rootKey = keys.root(jobId, checkpointId);
  const origin: ManifestOrigin = { jobId, checkpointId, rootKey, partKey: (sha256) => keys.part(jobId, sha256) };
  const context: EtcdCallContext = {
    operation: `read manifest of checkpoint ${checkpointId} of job ${jobId}`,
    jobId,
    checkpointId,
  };
  const { kv, revision } = await getValue(ctx, rootKey, context);
  if (kv === undefined) return undefined;
  const codecs = storeCodecs();
  const root = decodeStored(codecs.manifestRoot, kv.value, (problem, cause) =>
    corruptManifest(origin, rootKey, problem, cause),
  );
  checkRoot(root, origin, ctx.options);
  const parts = await readParts(ctx, root, origin, { context, revision });
  const encoded = assembleManifest(root, parts, origin);
  const manifest = decodeStored(codecs.manifest, encoded, (problem, cause) =>
    corruptManifest(origin, rootKey, problem, cause),
  );
  checkManifest(manifest, root, origin);
  return manifest;
}

/** The parts a checked root names, read at `revision`; each refused at once if missing or of another size. */
async function readParts(
  ctx: StoreContext,
  root: ManifestRoot,
  origin: ManifestOrigin,
  at: { context: EtcdCallContext; revision: string },
): Promise<Map<string, Uint8Array>> {
  const parts = new Map<string, Uint8Array>();
  await mapConcurrent(root.parts, ctx.options.partConcurrency, async ({ sha256, sizeBytes }, index) => {
    const key = origin.partKey(sha256);
    const { kv } = await getValue(ctx, key, at.context, at.revision);
    if (kv === undefined) throw corruptManifest(origin, key, `part ${index} (${sha256}) is missing`);
    if (kv.value.length !== sizeBytes) {
      throw corruptManifest(
        origin,
        key,
        `part ${index} (${sha256}) has ${kv.value.length} bytes, ${sizeBytes} recorded`,
      );
    }
    parts.set(sha256, kv.value);
  });
  return parts;
}

/**
 * Summaries of the retained checkpoints of `jobId`, newest first, read at
 * one revision and each checked (decodes, names this job and checkpoint,
 * COMPLETED). Throws a `CorruptRecordError`: INTERNAL naming the summary's
 * key for a bad summary, JOB_QUARANTINED when the job has more than
 * `MAX_CHECKPOINT_KEYS` keys under its checkpoints.
 */
export async function listSummaries(ctx: StoreContext, jobId: string): Promise<CheckpointSummary[]> {
  const context: EtcdCallContext = { operation: `list checkpoints of job ${jobId}`, jobId };
  // Keys only: the roots beside the summaries may hold a whole manifest each.
  const prefix = ctx.keys.checkpoints(jobId);
  const listing = await listKeys(ctx, prefix, context, MAX_CHECKPOINT_KEYS + 1);
  if (listing.kvs.length > MAX_CHECKPOINT_KEYS) {
    throw corruptJobRecord(jobId, prefix, `holds more than ${MAX_CHECKPOINT_KEYS} keys`);
  }
  const summaryKeys: { key: string; checkpointId: number }[] = [];
  for (const kv of listing.kvs) {
    const key = kv.key.toString();
    const parsed = ctx.keys.parse(key);
    if (parsed?.kind === 'summary') summaryKeys.push({ key, checkpointId: parsed.checkpointId });
  }
  summaryKeys.sort((a, b) => b.checkpointId - a.checkpointId);
  return mapConcurrent(summaryKeys, ctx.options.partConcurrency, async ({ key, checkpointId }) => {
    const corrupt = (problem: string, cause?: unknown): CorruptRecordError =>
      new CorruptRecordError('INTERNAL', `summary of checkpoint ${checkpointId} of job ${jobId}`, key, problem, {
        jobId,
        checkpointId,
        cause,
      });
    const { kv } = await getValue(ctx, key, context, listing.revision);
    if (kv === undefined) throw corrupt('vanished at the revision it was listed');
    const summary = decodeStored(storeCodecs().summary, kv.value, corrupt);
    checkSummary(summary, jobId, checkpointId, key);
    return summary;
  });
}
