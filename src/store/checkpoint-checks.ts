/**
 * Checks of a committed checkpoint's records as read back: its manifest
 * root, before any part is read; the manifest it decodes to; and its
 * summary. A failed check throws a `CorruptRecordError` (INTERNAL) naming
 * the job, the checkpoint and the key, or OVERSIZED for a manifest above
 * `maxManifestBytes`.
 */
import { CkptError } from '../core/errors.js';
import { CEILING_LIMITS } from '../core/limits.js';
import { validateTaskSnapshot, type SnapshotRules } from '../core/snapshot-checks.js';
import { checkId } from '../core/validate.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { Manifest__Output as Manifest } from '../gen/ckpt/v1/Manifest.js';
import type { ManifestRoot__Output as ManifestRoot } from '../gen/ckpt/v1/ManifestRoot.js';
import type { TaskSnapshot__Output as TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CorruptRecordError, preview } from './corrupt-record.js';
import { inRange, MAX_STORED_COUNTER } from './record-limits.js';

const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** Where a manifest being read belongs, for errors. */
export interface ManifestOrigin {
  jobId: string;
  checkpointId: number;
  /** Key of the checkpoint's root. */
  rootKey: string;
  /** Key of the part of the given hash. */
  partKey(sha256: string): string;
}

/** What bounds a manifest as read. */
export interface ManifestLimits {
  /** Largest encoded manifest, and largest stored (compressed) one. */
  maxManifestBytes: number;
  /** Most parts a root may name: a commit compares every part it names in one transaction. */
  maxTxnOps: number;
}

/** The error of a manifest whose records are not what a commit writes. */
export function corruptManifest(
  origin: ManifestOrigin,
  key: string,
  problem: string,
  cause?: unknown,
): CorruptRecordError {
  const { jobId, checkpointId } = origin;
  return new CorruptRecordError('INTERNAL', `manifest of checkpoint ${checkpointId} of job ${jobId}`, key, problem, {
    jobId,
    checkpointId,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Checks a root before any part is read: that it names this checkpoint,
 * records sizes within `limits`, a known compression, a hash, and either
 * inline bytes of the stored size or distinct parts whose sizes add up to
 * it. Returns the stored size.
 */
export function checkRoot(root: ManifestRoot, origin: ManifestOrigin, limits: ManifestLimits): number {
  const fail = (problem: string): CorruptRecordError => corruptManifest(origin, origin.rootKey, problem);
  if (root.checkpointId !== origin.checkpointId) throw fail(`the root names checkpoint ${root.checkpointId}`);
  if (!inRange(root.epoch, 1, MAX_STORED_COUNTER)) throw fail(`the root's epoch ${root.epoch} is out of range`);
  if (!SHA256_PATTERN.test(root.manifestSha256)) {
    throw fail(`the root's manifest hash ${preview(root.manifestSha256)} is not 64 lowercase hex digits`);
  }
  if (!inRange(root.manifestBytes, 1, Number.MAX_SAFE_INTEGER)) {
    throw fail(`the root records a manifest of ${root.manifestBytes} bytes`);
  }
  assertWithinMax(root.manifestBytes, 'encoded', origin, limits);
  const stored = storedSize(root, fail);
  assertWithinMax(stored, 'stored', origin, limits);
  if (root.parts.length === 0) {
    if (root.inline.length !== stored)
      throw fail(`${root.inline.length} inline bytes, ${stored} stored bytes recorded`);
  } else {
    checkParts(root, stored, limits, fail);
  }
  return stored;
}

/** The size of the stored bytes the root records; roots written before compression existed record none. */
function storedSize(root: ManifestRoot, fail: (problem: string) => CorruptRecordError): number {
  const compression: string = root.compression;
  if (compression !== 'MANIFEST_COMPRESSION_UNSPECIFIED' && compression !== 'MANIFEST_COMPRESSION_DEFLATE') {
    throw fail(`unknown compression ${preview(String(compression))}`);
  }
  if (root.storedBytes === 0) {
    if (compression === 'MANIFEST_COMPRESSION_DEFLATE') throw fail('a compressed manifest records no stored size');
    return root.manifestBytes;
  }
  if (!Number.isSafeInteger(root.storedBytes)) throw fail(`the root records ${root.storedBytes} stored bytes`);
  if (compression === 'MANIFEST_COMPRESSION_UNSPECIFIED' && root.storedBytes !== root.manifestBytes) {
    throw fail(`an uncompressed manifest of ${root.manifestBytes} bytes records ${root.storedBytes} stored bytes`);
  }
  return root.storedBytes;
}

function checkParts(
  root: ManifestRoot,
  stored: number,
  limits: ManifestLimits,
  fail: (problem: string) => CorruptRecordError,
): void {
  if (root.inline.length > 0) throw fail('the root holds both inline bytes and parts');
  if (root.parts.length > limits.maxTxnOps) {
    throw fail(`the root names ${root.parts.length} parts, more than a commit can (maxTxnOps ${limits.maxTxnOps})`);
  }
  const seen = new Set<string>();
  let total = 0;
  for (const [index, part] of root.parts.entries()) {
    if (!SHA256_PATTERN.test(part.sha256)) throw fail(`part ${index} has the hash ${preview(part.sha256)}`);
    if (seen.has(part.sha256)) throw fail(`part ${index} (${part.sha256}) is named twice (duplicate parts)`);
    seen.add(part.sha256);
    if (!inRange(part.sizeBytes, 1, stored)) throw fail(`part ${index} records ${part.sizeBytes} bytes`);
    total += part.sizeBytes;
  }
  if (total !== stored) throw fail(`the parts record ${total} bytes together, ${stored} stored bytes recorded`);
}

function assertWithinMax(bytes: number, what: string, origin: ManifestOrigin, limits: ManifestLimits): void {
  if (bytes <= limits.maxManifestBytes) return;
  const { jobId, checkpointId, rootKey } = origin;
  throw new CkptError(
    'OVERSIZED',
    `manifest of checkpoint ${checkpointId} of job ${jobId} records ${bytes} ${what} bytes, more than ` +
      `maxManifestBytes (${limits.maxManifestBytes}); nothing was read (key ${rootKey})`,
    { jobId, checkpointId },
  );
}

/**
 * Checks a decoded manifest against its root: same job, checkpoint and
 * epoch, at most `CEILING_LIMITS.maxTasksPerJob` tasks of valid, distinct
 * ids, each snapshot as an acknowledgement is checked (`storedSnapshotRules`).
 */
export function checkManifest(manifest: Manifest, root: ManifestRoot, origin: ManifestOrigin): void {
  const fail = (problem: string): CorruptRecordError => corruptManifest(origin, origin.rootKey, problem);
  if (manifest.jobId !== origin.jobId || manifest.checkpointId !== origin.checkpointId) {
    throw fail(`it holds checkpoint ${manifest.checkpointId} of job ${preview(manifest.jobId)}`);
  }
  if (manifest.epoch !== root.epoch) throw fail(`it holds epoch ${manifest.epoch}, the root ${root.epoch}`);
  if (manifest.tasks.length > CEILING_LIMITS.maxTasksPerJob) throw fail(`it holds ${manifest.tasks.length} tasks`);
  const rules = storedSnapshotRules(manifest);
  const seen = new Set<string>();
  for (const task of manifest.tasks) {
    const problem = taskProblem(task, seen, origin.jobId, rules);
    if (problem !== undefined) throw fail(`a task snapshot is invalid: ${problem}`);
  }
}

/**
 * What a committed snapshot is checked against: the ceiling of state sizes,
 * and any URI scheme. Which schemes a job's workers may use is the
 * coordinator's configuration, checked when the snapshot was acknowledged;
 * a coordinator configured otherwise since must still be able to restore
 * it. The URIs' syntax, checksums, sizes and counts are checked as then.
 */
export function storedSnapshotRules(manifest: Manifest): SnapshotRules {
  const schemes = new Set<string>();
  for (const task of manifest.tasks) {
    for (const handle of [task.state, ...(task.state?.shared ?? [])]) {
      const uri = handle?.uri ?? '';
      const colon = uri.indexOf(':');
      if (colon > 0) schemes.add(uri.slice(0, colon));
    }
  }
  return { maxStateBytes: CEILING_LIMITS.maxStateBytes, stateUriSchemes: schemes };
}

/** What is wrong with one task's snapshot in a manifest, or undefined; adds its id to `seen`. */
function taskProblem(task: TaskSnapshot, seen: Set<string>, jobId: string, rules: SnapshotRules): string | undefined {
  try {
    const taskId = checkId(task.taskId, 'task_id', { jobId });
    if (seen.has(taskId)) return `task ${taskId} appears twice`;
    seen.add(taskId);
    validateTaskSnapshot(task, { jobId, taskId }, rules);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * What is wrong with a summary stored for checkpoint `checkpointId` of
 * `jobId`, or undefined: it must name them, be COMPLETED (only committed
 * checkpoints have one) and hold an epoch in range.
 */
export function summaryProblem(summary: CheckpointSummary, jobId: string, checkpointId: number): string | undefined {
  if (summary.jobId !== jobId || summary.checkpointId !== checkpointId) {
    return `it is the summary of checkpoint ${summary.checkpointId} of job ${preview(summary.jobId)}`;
  }
  if (summary.state !== 'CHECKPOINT_STATE_COMPLETED') return `its state is ${preview(String(summary.state))}`;
  if (!inRange(summary.epoch, 1, MAX_STORED_COUNTER)) return `its epoch ${summary.epoch} is out of range`;
  return undefined;
}

/** Throws a `CorruptRecordError` (INTERNAL) unless `summaryProblem` finds nothing. */
export function checkSummary(summary: CheckpointSummary, jobId: string, checkpointId: number, key: string): void {
  const problem = summaryProblem(summary, jobId, checkpointId);
  if (problem === undefined) return;
  throw new CorruptRecordError('INTERNAL', `summary of checkpoint ${checkpointId} of job ${jobId}`, key, problem, {
    jobId,
    checkpointId,
  });
}
