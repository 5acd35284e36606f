/**
 * Judging the task state a run left behind (invariant 6 of DESIGN.md):
 * every piece a retained checkpoint or savepoint names must read back whole,
 * and a stored piece that nothing retained names must not outlive the
 * coordinator's orphan grace period and a sweep.
 *
 * Pure: the caller reads etcd and the state directory (`state-check.ts`)
 * and hands the outcomes in.
 */
import type { StateHandle__Output as StateHandle } from '../../src/gen/ckpt/v1/StateHandle.js';
import { parseSnapshotSegments, SNAPSHOT_FILE_EXTENSION, type ListedPiece } from '../../src/sdk/state/index.js';

/** What holds a manifest in etcd. */
export type HolderKind = 'checkpoint' | 'savepoint';

/** A retained checkpoint or savepoint, as far as the check needs it. */
export interface RetainedManifest {
  kind: HolderKind;
  checkpointId: number;
  tasks: ReadonlyArray<{ taskId: string; state?: StateHandle | null }>;
}

/** One (checkpoint or savepoint, task) naming a piece. */
export interface Namer {
  kind: HolderKind;
  checkpointId: number;
  taskId: string;
}

/** One distinct piece to read: the handle naming it, and everyone who names it so. */
export interface PieceRead {
  /** The piece's own handle (its `shared` is not followed again). */
  handle: StateHandle;
  namedBy: Namer[];
}

/** What reading one piece gave. */
export interface PieceOutcome {
  read: PieceRead;
  /** Bytes as stored (verified against size and checksum); 0 when the read failed. */
  storedBytes: number;
  /** Bytes after decompression; 0 when the read failed. */
  rawBytes: number;
  /** Why the piece could not be read, verified or decompressed; undefined when it could. */
  error?: string;
}

/**
 * The pieces a handle names, in the order a restore reads them: the shared
 * pieces it builds on (each with its own shared pieces first), then its own.
 * A handle without a uri (a stateless task) names none.
 */
export function piecesOf(handle: StateHandle | null | undefined): StateHandle[] {
  if (handle === null || handle === undefined) return [];
  const pieces = (handle.shared ?? []).flatMap((s) => piecesOf(s));
  if (handle.uri !== '') pieces.push({ ...handle, shared: [] });
  return pieces;
}

/**
 * Every distinct piece the manifests name, each once however many
 * checkpoints share it, in the order first named. Two handles of one uri
 * that disagree on size or checksum are read as two pieces, so that a
 * handle that lies about a piece shows.
 */
export function planReads(manifests: readonly RetainedManifest[]): PieceRead[] {
  const reads = new Map<string, PieceRead>();
  for (const m of manifests) {
    for (const task of m.tasks) {
      const namer = { kind: m.kind, checkpointId: m.checkpointId, taskId: task.taskId };
      for (const handle of piecesOf(task.state)) {
        const key = `${handle.uri}\u0000${String(handle.sizeBytes)}\u0000${handle.checksum}`;
        const read = reads.get(key) ?? { handle, namedBy: [] };
        if (!read.namedBy.some((n) => sameNamer(n, namer))) read.namedBy.push(namer);
        reads.set(key, read);
      }
    }
  }
  return [...reads.values()];
}

/** Every uri the manifests name, own pieces and shared ones. */
export function namedUris(manifests: readonly RetainedManifest[]): Set<string> {
  return new Set(manifests.flatMap((m) => m.tasks.flatMap((t) => piecesOf(t.state).map((h) => h.uri))));
}

/** The failed reads judged, and those left out because nothing retained names them any more. */
export interface HandleVerdict {
  violations: string[];
  /** Failed reads of pieces whose every namer was dropped by retention while the check ran. */
  dropped: number;
}

/**
 * A violation for every failed read some namer of which is still retained
 * (`stillRetained`, read after the failures): such a piece was missing or
 * corrupt while a retained checkpoint named it. A piece whose namers were
 * all subsumed meanwhile may rightly be gone, and is only counted.
 */
export function judgeReads(
  outcomes: readonly PieceOutcome[],
  stillRetained: (kind: HolderKind, checkpointId: number) => boolean,
): HandleVerdict {
  const verdict: HandleVerdict = { violations: [], dropped: 0 };
  for (const o of outcomes) {
    if (o.error === undefined) continue;
    const retained = o.read.namedBy.filter((n) => stillRetained(n.kind, n.checkpointId));
    const first = retained[0];
    if (first === undefined) {
      verdict.dropped += 1;
      continue;
    }
    const more = retained.length > 1 ? ` (also named by ${retained.length - 1} more)` : '';
    verdict.violations.push(
      `state handle check: ${first.kind} ${first.checkpointId} task ${first.taskId} piece ${o.read.handle.uri}: ` +
        `${o.error}${more}`,
    );
  }
  return verdict;
}

/** What stored pieces are judged against. */
export interface OrphanScope {
  /** Every uri a retained checkpoint or savepoint names. */
  named: ReadonlySet<string>;
  /** The job's latest committed checkpoint: no checkpoint up to it can commit any more. */
  latestCommitted: number;
  nowMs: number;
  /** The coordinators' `orphanGraceMs`. */
  graceMs: number;
}

/**
 * The listed pieces that nothing retained names, that were last written at
 * least the grace ago, and whose checkpoint can no longer commit (its id is
 * at most the latest committed; a later one may be pending, and the sweep
 * keeps it): orphans the coordinator's sweep should have deleted.
 */
export function findOrphans(listed: readonly ListedPiece[], scope: OrphanScope): ListedPiece[] {
  return listed.filter((p) => {
    if (scope.named.has(p.uri) || scope.nowMs - p.modifiedAtMs < scope.graceMs) return false;
    const id = checkpointIdOf(p.uri);
    return id !== undefined && id <= scope.latestCommitted;
  });
}

/** The checkpoint a `file://` piece's name says it belongs to; undefined for any other name. */
export function checkpointIdOf(uri: string): number | undefined {
  let path: string;
  try {
    path = new URL(uri).pathname;
  } catch {
    return undefined;
  }
  return parseSnapshotSegments(path.split('/').slice(-3), SNAPSHOT_FILE_EXTENSION)?.checkpointId;
}

/**
 * The orphans found earlier that a later look still finds stored and
 * unnamed: a piece deleted meanwhile was on its way out, and one a newer
 * checkpoint names again was not an orphan.
 */
export function confirmOrphans(
  earlier: readonly ListedPiece[],
  listedLater: readonly ListedPiece[],
  namedLater: ReadonlySet<string>,
): ListedPiece[] {
  const still = new Set(listedLater.map((p) => p.uri));
  return earlier.filter((p) => still.has(p.uri) && !namedLater.has(p.uri));
}

/** What the check read and found. */
export interface HandleCheckReport {
  /** Retained checkpoints and savepoints whose manifests were read. */
  manifests: number;
  /** Distinct pieces read. */
  piecesChecked: number;
  /** Bytes read as stored. */
  bytesRead: number;
  /** Bytes after decompression. */
  rawBytes: number;
  /** Failed reads left out because retention dropped every checkpoint naming them meanwhile. */
  dropped: number;
  /** Stored pieces of the job found, and orphans among them (unnamed, past the grace, still there after a sweep). */
  storedPieces: number;
  orphans: number;
  /** The grace the orphans were judged by: the coordinators'. */
  orphanGraceMs: number;
  /** Whether orphans count as violations: a sweep with the job's workers attached surely ran. */
  orphansJudged: boolean;
  /** Why orphans were only counted, when they were. */
  notJudgedWhy: string;
  violations: string[];
}

/** The summary lines of a report. */
export function describeHandleCheck(r: HandleCheckReport): string[] {
  const orphanRule = r.orphansJudged ? 'judged: each is a violation' : `counted only, not judged (${r.notJudgedWhy})`;
  return [
    `state handles: ${r.manifests} retained manifests, ${r.piecesChecked} pieces checked, ` +
      `${bytes(r.bytesRead)} read (${bytes(r.rawBytes)} decoded)` +
      (r.dropped > 0 ? `, ${r.dropped} unreadable but released meanwhile` : ''),
    `state orphans: ${r.orphans} of ${r.storedPieces} stored pieces, past a ${r.orphanGraceMs} ms grace (${orphanRule})`,
  ];
}

/** `n` bytes for people: B under 1 KiB, KiB under 1 MiB, else MiB. */
function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function sameNamer(a: Namer, b: Namer): boolean {
  return a.kind === b.kind && a.checkpointId === b.checkpointId && a.taskId === b.taskId;
}
