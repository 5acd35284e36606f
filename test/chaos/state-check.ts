/**
 * The end-of-run check of the task state in the shared state directory,
 * while the stack still runs: the retained manifests are read from etcd as
 * the coordinators store them, every piece they name is read back through
 * the SDK's local directory backend (which verifies size and sha256) and
 * decoded, and the directory is searched for orphans the sweeps missed.
 * The verdict is `handle-check.ts`'s.
 */
import type { IOptions } from 'etcd3';
import { decodeStoredPiece } from '../../src/sdk/state/compression.js';
import { setTimeout as delay } from 'node:timers/promises';
import { createLocalDirectoryBackend, type LocalDirectoryBackend } from '../../src/sdk/state/index.js';
import { createEtcdStore, type EtcdStore } from '../../src/store/index.js';
import {
  confirmOrphans,
  findOrphans,
  judgeReads,
  namedUris,
  planReads,
  type HandleCheckReport,
  type PieceOutcome,
  type PieceRead,
  type RetainedManifest,
} from './handle-check.js';

/** Where the state and its manifests are, and how the coordinators sweep it. */
export interface StateCheckInput {
  etcdUrls: readonly string[];
  /** TLS and credentials of the etcd client; undefined in plain text. */
  etcdSecurity: Pick<IOptions, 'credentials' | 'auth'> | undefined;
  etcdPrefix: string;
  stateDir: string;
  jobId: string;
  /** The coordinators' `orphanGraceMs`. */
  orphanGraceMs: number;
  /** The coordinators' `stateSweepIntervalMs`: how long to wait before orphans found are looked at again. */
  stateSweepIntervalMs: number;
  /** Why orphans cannot be judged (no sweep with the job's workers attached is sure to have run); undefined when they can. */
  notJudgedWhy: string | undefined;
  log: (line: string) => void;
  signal?: AbortSignal | undefined;
}

/** Reads every retained piece back and looks for orphans; see the module comment. */
export async function checkState(input: StateCheckInput): Promise<HandleCheckReport> {
  const store = createEtcdStore({
    hosts: [...input.etcdUrls],
    prefix: input.etcdPrefix,
    ...(input.etcdSecurity === undefined ? {} : { security: input.etcdSecurity }),
  });
  const backend = await createLocalDirectoryBackend({ dir: input.stateDir });
  try {
    const manifests = await readRetained(store, input.jobId);
    const reads = planReads(manifests);
    const outcomes = await readPieces(backend, reads, input.jobId, input.signal);
    const failed = outcomes.some((o) => o.error !== undefined);
    const retainedAfter = failed ? holders(await readRetained(store, input.jobId)) : holders(manifests);
    const verdict = judgeReads(outcomes, (kind, id) => retainedAfter.has(`${kind} ${id}`));
    const orphans = await lookForOrphans(input, store, backend, manifests);
    const judged = input.notJudgedWhy === undefined;
    return {
      manifests: manifests.length,
      piecesChecked: reads.length,
      bytesRead: sum(outcomes.map((o) => o.storedBytes)),
      rawBytes: sum(outcomes.map((o) => o.rawBytes)),
      dropped: verdict.dropped,
      storedPieces: orphans.stored,
      orphans: orphans.uris.length,
      orphanGraceMs: input.orphanGraceMs,
      orphansJudged: judged,
      notJudgedWhy: input.notJudgedWhy ?? '',
      violations: [
        ...verdict.violations,
        ...(judged ? orphans.uris.map((uri) => `state orphan check: piece ${uri} outlived the grace and a sweep`) : []),
      ],
    };
  } finally {
    await backend.close();
    await store.close();
  }
}

/** The job's retained checkpoints and savepoints, with their manifests. */
async function readRetained(store: EtcdStore, jobId: string): Promise<RetainedManifest[]> {
  const retained: RetainedManifest[] = [];
  for (const summary of await store.listSummaries(jobId)) {
    const manifest = await store.readManifest(jobId, summary.checkpointId);
    // Retention may drop it between the listing and the read.
    if (manifest !== undefined) retained.push({ kind: 'checkpoint', ...manifest });
  }
  for (const savepoint of await store.listSavepoints(jobId)) {
    if (savepoint.manifest !== null) retained.push({ kind: 'savepoint', ...savepoint.manifest });
  }
  return retained;
}

function holders(manifests: readonly RetainedManifest[]): Set<string> {
  return new Set(manifests.map((m) => `${m.kind} ${m.checkpointId}`));
}

/** Reads the pieces one after another (see `readPiece`). */
export async function readPieces(
  backend: LocalDirectoryBackend,
  reads: readonly PieceRead[],
  jobId: string,
  signal?: AbortSignal,
): Promise<PieceOutcome[]> {
  const outcomes: PieceOutcome[] = [];
  for (const read of reads) outcomes.push(await readPiece(backend, read, jobId, signal));
  return outcomes;
}

/** Reads one piece through the backend, verified, and decodes it; a failure is its outcome, never thrown. */
async function readPiece(
  backend: LocalDirectoryBackend,
  read: PieceRead,
  jobId: string,
  signal: AbortSignal | undefined,
): Promise<PieceOutcome> {
  try {
    const stored = await backend.get(read.handle, signal, { jobId });
    // Inflates a compressed piece and checks its raw size.
    const raw = await decodeStoredPiece(read.handle, stored);
    return { read, storedBytes: stored.length, rawBytes: raw.length };
  } catch (err) {
    return { read, storedBytes: 0, rawBytes: 0, error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Orphans of the job (`findOrphans`), judged against the manifests read
 * before the listing, so that a piece released meanwhile still counts as
 * named, and confirmed when still stored and unnamed after one more sweep
 * interval.
 */
async function lookForOrphans(
  input: StateCheckInput,
  store: EtcdStore,
  backend: LocalDirectoryBackend,
  manifests: readonly RetainedManifest[],
): Promise<{ stored: number; uris: string[] }> {
  const listed = await backend.listPieces(input.jobId);
  const candidates = findOrphans(listed, {
    named: namedUris(manifests),
    latestCommitted: Math.max(0, ...manifests.filter((m) => m.kind === 'checkpoint').map((m) => m.checkpointId)),
    nowMs: Date.now(),
    graceMs: input.orphanGraceMs,
  });
  if (candidates.length === 0) return { stored: listed.length, uris: [] };
  input.log(`${candidates.length} unnamed pieces past the grace; looking again after a sweep interval`);
  await delay(input.stateSweepIntervalMs + 1_000);
  const namedLater = namedUris(await readRetained(store, input.jobId));
  const confirmed = confirmOrphans(candidates, await backend.listPieces(input.jobId), namedLater);
  return { stored: listed.length, uris: confirmed.map((p) => p.uri) };
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
