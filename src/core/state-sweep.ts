/**
 * When a state piece found in storage is garbage, and why: the rule the
 * coordinator applies to what it lists in object store buckets and to what
 * workers report of their directories alike, so that one place decides.
 * Pure: the caller supplies the listing, the clock and what the registry
 * and the job's tracker know.
 */

/** Why a piece may go. */
export type GarbageReason = 'orphan' | 'subsumed' | 'canceled';

/** Most uris in one DiscardCommand and pieces in one StateListing. */
export const MAX_PIECES_PER_MESSAGE = 256;

/** A piece as found in storage, its name parsed. */
export interface FoundPiece {
  uri: string;
  /** The job and checkpoint its name says it belongs to. */
  jobId: string;
  checkpointId: number;
  /** When it was last written. */
  modifiedAtMs: number;
}

/** What a piece of one job is judged against. */
export interface SweepScope {
  jobId: string;
  nowMs: number;
  /** Pieces younger than this may belong to an upload under way. */
  orphanGraceMs: number;
  /** A retained checkpoint or savepoint of any job names the uri. */
  isLive(uri: string): boolean;
  /** The checkpoint may still commit (pending, or not triggered yet). */
  mayCommit(checkpointId: number): boolean;
  /** Released by retention, deletion not confirmed. */
  released: ReadonlySet<string>;
  /** The job is canceled and its state's retention has passed: all of it goes. */
  canceledStateDue: boolean;
}

/**
 * Why `piece` is garbage, or undefined when it must stay: a piece of
 * another job, one anything retained names, one of a checkpoint that may
 * still commit, and an orphan younger than the grace period all stay.
 */
export function garbageReason(piece: FoundPiece, scope: SweepScope): GarbageReason | undefined {
  if (piece.jobId !== scope.jobId || scope.isLive(piece.uri)) return undefined;
  if (scope.canceledStateDue) return 'canceled';
  if (scope.released.has(piece.uri)) return 'subsumed';
  if (scope.mayCommit(piece.checkpointId)) return undefined;
  return scope.nowMs - piece.modifiedAtMs >= scope.orphanGraceMs ? 'orphan' : undefined;
}

/** `items` in slices of at most `size`, for messages of bounded size. */
export function slicesOf<T>(items: readonly T[], size = MAX_PIECES_PER_MESSAGE): T[][] {
  const slices: T[][] = [];
  for (let i = 0; i < items.length; i += size) slices.push(items.slice(i, i + size));
  return slices;
}

/** Default of the coordinator's `orphanGraceMs`: 10 minutes. */
export const DEFAULT_ORPHAN_GRACE_MS = 600_000;
/** Default of the coordinator's `stateSweepIntervalMs`: 5 minutes. */
export const DEFAULT_STATE_SWEEP_INTERVAL_MS = 300_000;
/** Default of the coordinator's `canceledStateRetentionMs`: a canceled job's state goes at once. */
export const DEFAULT_CANCELED_STATE_RETENTION_MS = 0;
