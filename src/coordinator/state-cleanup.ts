/**
 * The cleanup of task state, carried out by whoever reaches the storage.
 * The `SharedStateRegistry` decides which pieces are still named; this
 * module feeds it (commits, retention, savepoint pins, a new leader's load
 * from etcd) and deletes what it releases: `nats-obj://` pieces itself,
 * `file://` pieces through `DiscardCommand`s to the job's workers. Orphans
 * (uploads of checkpoints that never committed, and pieces whose deletion
 * failed) are found by sweeps: of the buckets here, of the workers'
 * directories by their `StateListing`s, judged by the same rule
 * (`garbageReason`). While any retained manifest could not be read, nothing
 * is deleted: a piece it names might look unnamed.
 */
import type { Manifest__Output } from '../gen/ckpt/v1/Manifest.js';
import type { StoredPiece } from '../gen/ckpt/v1/StoredPiece.js';
import { CkptError } from '../core/errors.js';
import { checkCount } from '../core/limits.js';
import type { CheckpointStore, StatePieces } from '../core/ports.js';
import {
  snapshotUris,
  type HandleLike,
  type SharedStateRegistry,
  type SnapshotLike,
} from '../core/shared-state-registry.js';
import { garbageReason, MAX_PIECES_PER_MESSAGE, slicesOf, type SweepScope } from '../core/state-sweep.js';
import { MAX_URI_BYTES } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import { sweepJob, sweepStrayChunks, type GarbageReport, type SweepContext } from './state-sweeper.js';
import { JobPlaces, placeOf } from './state-places.js';
import type { Session } from './sessions.js';

/** Released pieces remembered until their deletion is confirmed; the oldest are forgotten past it. */
const MAX_REMEMBERED_RELEASES = 100_000;

/** What the cleanup needs to know of a job. */
export interface CleanupJob {
  jobId: string;
  canceled: boolean;
  retainedCheckpointIds: readonly number[];
  /** The checkpoint may still commit: it is pending, or not triggered yet. */
  mayCommit(checkpointId: number): boolean;
}

/** Options of the cleanup; the durations are the coordinator's options of the same names. */
export interface StateCleanupOptions {
  registry: SharedStateRegistry;
  /** The object store buckets; undefined when the coordinator reaches none. */
  pieces?: StatePieces | undefined;
  store: Pick<CheckpointStore, 'readManifest'>;
  /** The job's live worker sessions. */
  sessionsOf(jobId: string): Session[];
  /** The job, if this coordinator runs it. */
  job(jobId: string): CleanupJob | undefined;
  /** The handles the job's savepoints pin. */
  pinnedHandles(jobId: string): Promise<readonly HandleLike[]>;
  term: number;
  now(): number;
  log: Logger;
  orphanGraceMs: number;
  canceledStateRetentionMs: number;
}

/** Feeds the registry and deletes what it releases. */
export class StateCleanup {
  readonly #o: StateCleanupOptions;
  readonly #places = new Map<string, JobPlaces>();
  /** Uris released by retention whose deletion is not confirmed, with their job. */
  readonly #released = new Map<string, string>();
  /** When this leader saw each canceled job canceled. */
  readonly #canceledAt = new Map<string, number>();
  /** Jobs whose retained manifests could not all be read. */
  readonly #incomplete = new Set<string>();
  /** Canceled jobs whose state is all gone from the buckets. */
  readonly #collected = new Set<string>();
  #sweeping = false;

  /** See `StateCleanupOptions`. */
  constructor(options: StateCleanupOptions) {
    this.#o = options;
  }

  /** Whether deletions may run: every retained manifest is registered. */
  get complete(): boolean {
    return this.#incomplete.size === 0;
  }

  /**
   * A new leader's start: registers every retained manifest and savepoint
   * pin of `jobs` from etcd, afresh. A job whose manifests cannot be read
   * holds every deletion back until a sweep reads them.
   */
  async load(jobs: readonly CleanupJob[]): Promise<void> {
    this.#o.registry.rebuild([]);
    for (const job of jobs) {
      if (job.canceled) this.#canceledAt.set(job.jobId, this.#o.now());
      await this.#loadJob(job);
    }
  }

  async #loadJob(job: CleanupJob): Promise<void> {
    try {
      const read = await Promise.all(job.retainedCheckpointIds.map((id) => this.#o.store.readManifest(job.jobId, id)));
      const manifests = read.filter((m): m is Manifest__Output => m !== undefined);
      const pinned = await this.#o.pinnedHandles(job.jobId);
      this.#o.registry.load({ jobId: job.jobId, manifests, pinned });
      for (const m of manifests) this.placesOf(job.jobId).note(snapshotUris(m.tasks));
      this.#incomplete.delete(job.jobId);
    } catch (err) {
      this.#incomplete.add(job.jobId);
      this.#o.log.error({ err, jobId: job.jobId }, 'retained manifests unreadable: state cleanup holds back');
    }
  }

  /** What the coordinator has seen of where a job keeps its state. */
  placesOf(jobId: string): JobPlaces {
    let places = this.#places.get(jobId);
    if (places === undefined) {
      places = new JobPlaces();
      this.#places.set(jobId, places);
    }
    return places;
  }

  /**
   * The shared pieces `tasks` build on that nothing retained names any
   * more, and that this cleanup may therefore have deleted: pieces named as
   * the backends name snapshots. Uris of any other form are never deleted
   * here, so building on them is not refused. None while the registry is
   * incomplete (it cannot tell).
   */
  releasedShared(tasks: readonly SnapshotLike[]): string[] {
    if (!this.complete) return [];
    return this.#o.registry.releasedShared(tasks).filter((uri) => placeOf(uri) !== undefined);
  }

  /** Snapshots were acknowledged: where they went is where orphans may be. */
  acknowledged(jobId: string, tasks: readonly SnapshotLike[]): void {
    this.placesOf(jobId).note(snapshotUris(tasks));
  }

  /** A checkpoint committed and retention dropped `subsumed`: what no one names any more goes. */
  committed(manifest: Pick<Manifest__Output, 'jobId' | 'checkpointId' | 'tasks'>, subsumed: readonly number[]): void {
    const { jobId } = manifest;
    // Listed once for both: a manifest of 100,000 tasks names as many uris.
    const uris = snapshotUris(manifest.tasks);
    this.#o.registry.registerUris(jobId, manifest.checkpointId, uris);
    this.placesOf(jobId).note(uris);
    this.release(jobId, this.#o.registry.unregister(jobId, subsumed));
  }

  /**
   * A job was canceled: its state goes once the retention period has
   * passed. Without one, the file pieces its retained checkpoints name are
   * handed to its workers now, ahead of the cancel command that stops
   * them: once they are gone, nothing reaches their directories.
   */
  canceled(jobId: string): void {
    if (this.#canceledAt.has(jobId)) return;
    this.#canceledAt.set(jobId, this.#o.now());
    if (this.#o.canceledStateRetentionMs > 0 || !this.complete) return;
    const files = this.#o.registry.heldOnlyBy(jobId).filter((uri) => placeOf(uri)?.kind === 'file');
    if (files.length > 0) this.sendDiscard(jobId, files);
  }

  /**
   * The job's savepoints changed (one stored or deleted): pins what they
   * name now, and releases what only a deleted one held.
   */
  async savepointsChanged(jobId: string): Promise<void> {
    const released = this.#o.registry.pin(jobId, await this.#o.pinnedHandles(jobId));
    this.release(jobId, released);
  }

  /** Deletes released uris: object store pieces here, file pieces through the job's workers. */
  release(jobId: string, uris: readonly string[]): void {
    if (uris.length === 0) return;
    if (!this.complete) {
      this.#o.log.warn({ jobId, pieces: uris.length }, 'released pieces kept: the registry is incomplete');
      return;
    }
    const byBucket = new Map<string, string[]>();
    const files: string[] = [];
    for (const uri of uris) {
      const place = placeOf(uri);
      // Uris of any other form are no pieces this cleanup deletes.
      if (place !== undefined) this.#remember(uri, jobId);
      if (place?.kind === 'nats-obj') {
        const inBucket = byBucket.get(place.bucket) ?? [];
        inBucket.push(uri);
        byBucket.set(place.bucket, inBucket);
      } else if (place?.kind === 'file') files.push(uri);
    }
    for (const [bucket, inBucket] of byBucket) void this.deleteObjects(jobId, bucket, inBucket);
    if (files.length > 0) this.sendDiscard(jobId, files);
  }

  /** Deletes pieces of a bucket; what went is forgotten, what failed stays remembered. Never rejects. */
  async deleteObjects(jobId: string, bucket: string, uris: readonly string[]): Promise<Map<string, string>> {
    const failed = new Map<string, string>();
    if (this.#o.pieces === undefined) {
      for (const uri of uris) failed.set(uri, 'the coordinator reaches no object store');
      return failed;
    }
    try {
      const { left } = await this.#o.pieces.discard(bucket, jobId, uris);
      for (const { uri, why } of left) failed.set(uri, why);
    } catch (err) {
      for (const uri of uris) failed.set(uri, CkptError.from(err).message);
    }
    for (const uri of uris) if (!failed.has(uri)) this.#released.delete(uri);
    if (failed.size > 0) this.#o.log.warn({ jobId, bucket, failed: failed.size }, 'state pieces not deleted');
    return failed;
  }

  /**
   * Sends `uris` to live sessions of the job (all by default) in bounded
   * commands; returns how many sessions got them. Handed over, they are
   * forgotten: a worker's later listing shows what it could not delete.
   */
  sendDiscard(jobId: string, uris: readonly string[], sessions = this.#o.sessionsOf(jobId)): number {
    for (const slice of slicesOf(uris)) {
      for (const s of sessions) s.channel.send({ discard: { jobId, term: this.#o.term, uris: slice } });
    }
    if (sessions.length > 0) for (const uri of uris) this.#released.delete(uri);
    return sessions.length;
  }

  /** Asks the job's workers to list their pieces; returns how many were asked. */
  requestListings(jobId: string): number {
    const sessions = this.#o.sessionsOf(jobId);
    const staleUploadMs = this.#o.orphanGraceMs;
    for (const s of sessions) s.channel.send({ listState: { jobId, term: this.#o.term, staleUploadMs } });
    return sessions.length;
  }

  /**
   * A worker's listing of its pieces: those that are garbage by the sweep's
   * rule are sent back to it to delete. A bad listing is logged, never thrown.
   */
  listing(session: Session, pieces: readonly StoredPiece[]): void {
    const { jobId } = session;
    try {
      if (pieces.length > MAX_PIECES_PER_MESSAGE) {
        throw new CkptError('OVERSIZED', `a state listing has more than ${MAX_PIECES_PER_MESSAGE} pieces`, { jobId });
      }
      const scope = this.scope(jobId);
      if (scope === undefined) return;
      const garbage = pieces.filter((p) => isFileGarbage(p, scope));
      if (garbage.length > 0)
        this.sendDiscard(
          jobId,
          garbage.map((p) => p.uri ?? ''),
          [session],
        );
    } catch (err) {
      this.#o.log.warn({ err, jobId, workerId: session.workerId }, 'state listing refused');
    }
  }

  /** What a job's pieces are judged against now; undefined when nothing may be deleted. */
  scope(jobId: string): SweepScope | undefined {
    const job = this.#o.job(jobId);
    if (job === undefined || !this.complete) return undefined;
    const released = new Set<string>();
    for (const [uri, of] of this.#released) if (of === jobId) released.add(uri);
    return {
      jobId,
      nowMs: this.#o.now(),
      orphanGraceMs: this.#o.orphanGraceMs,
      isLive: (uri) => this.#o.registry.isLive(uri),
      mayCommit: (id) => job.mayCommit(id),
      released,
      canceledStateDue: this.canceledStateKeptUntil(jobId) === 0 && this.#canceledAt.has(jobId),
    };
  }

  /** When a canceled job's state may go, if that is still ahead; 0 otherwise. */
  canceledStateKeptUntil(jobId: string): number {
    const at = this.#canceledAt.get(jobId);
    if (at === undefined) return 0;
    const until = at + this.#o.canceledStateRetentionMs;
    return until > this.#o.now() ? until : 0;
  }

  /**
   * One job's sweep (see `sweepJob`); the periodic sweep and the
   * CollectGarbage call share it.
   */
  async collect(jobId: string, dryRun: boolean): Promise<GarbageReport> {
    if (!this.complete) await this.#retryIncomplete();
    return sweepJob(this.#sweepContext(), jobId, dryRun);
  }

  /**
   * Sweeps every job this coordinator runs, then the stray chunks of their
   * buckets, each bucket once; a sweep still running makes this one a no-op.
   */
  async sweepAll(jobIds: readonly string[]): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      await this.#sweepJobs(jobIds);
      const { pieces, orphanGraceMs, log } = this.#o;
      const buckets = new Set(jobIds.flatMap((jobId) => [...this.placesOf(jobId).buckets]));
      await sweepStrayChunks({ pieces, buckets, orphanGraceMs, nowMs: this.#o.now(), log });
    } finally {
      this.#sweeping = false;
    }
  }

  /** Sweeps each job not collected yet; never rejects. */
  async #sweepJobs(jobIds: readonly string[]): Promise<void> {
    try {
      await this.#retryIncomplete();
      for (const jobId of jobIds) {
        if (this.#collected.has(jobId)) continue;
        const report = await this.collect(jobId, false);
        if (report.canceledStateGone) this.#collected.add(jobId);
      }
    } catch (err) {
      this.#o.log.warn({ err }, 'state sweep failed; the next one tries again');
    }
  }

  async #retryIncomplete(): Promise<void> {
    for (const jobId of [...this.#incomplete]) {
      const job = this.#o.job(jobId);
      if (job === undefined) this.#incomplete.delete(jobId);
      else await this.#loadJob(job);
    }
  }

  #sweepContext(): SweepContext {
    return {
      cleanup: this,
      registry: this.#o.registry,
      pieces: this.#o.pieces,
      pinned: (jobId) => this.#o.pinnedHandles(jobId),
    };
  }

  #remember(uri: string, jobId: string): void {
    this.#released.set(uri, jobId);
    if (this.#released.size <= MAX_REMEMBERED_RELEASES) return;
    const oldest = this.#released.keys().next().value;
    if (oldest !== undefined) this.#released.delete(oldest);
  }

  /** Released pieces of a job whose deletion is not confirmed. */
  releasedOf(jobId: string): string[] {
    return [...this.#released].filter(([, of]) => of === jobId).map(([uri]) => uri);
  }
}

/** Whether a listed piece is a file piece of the scope's job that may go. */
function isFileGarbage(piece: StoredPiece, scope: SweepScope): boolean {
  const uri = piece.uri ?? '';
  if (uri.length > MAX_URI_BYTES)
    throw new CkptError('OVERSIZED', `a listed uri is longer than ${MAX_URI_BYTES} bytes`);
  const modifiedAtMs = checkCount(piece.modifiedAtMs ?? 0, 'state_listing.pieces.modified_at_ms');
  const place = placeOf(uri);
  if (place?.kind !== 'file') return false;
  return (
    garbageReason({ uri, jobId: place.jobId, checkpointId: place.checkpointId, modifiedAtMs }, scope) !== undefined
  );
}
