/**
 * The coordinator's consensus storage on etcd: `CheckpointStore` with the
 * key layout and formats of `proto/ckpt/v1/storage.proto`.
 *
 * The etcd client retries transient failures (three attempts, each with
 * its own deadline) and stops calling a host for 5 s after three failures
 * in a row. A retried write may thus reach etcd twice, when the reply to
 * the first was lost; every write tolerates that (content-addressed parts,
 * a commit that finds itself committed, a creation that finds its own
 * bytes, guarded deletes), except `bumpEpoch`, which reports STALE_EPOCH.
 * Writes guarded by a `LeaderGuard` happen only while the leader's
 * election key is unchanged.
 */
import { Etcd3 } from 'etcd3';
import type {
  CheckpointStore,
  CommitRequest,
  CommitResult,
  GarbageCollection,
  LeaderGuard,
  LoadedJobs,
  StoredJobState,
} from '../core/ports.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec__Output as JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState } from '../gen/ckpt/v1/JobState.js';
import type { Manifest__Output as Manifest } from '../gen/ckpt/v1/Manifest.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import { etcdHostBreaker } from './host-breaker.js';
import { prepareTaskSnapshots } from './manifest-encoding.js';
import { commitCheckpoint, type CommitGuard } from './commit.js';
import { collectGarbage } from './garbage.js';
import type { Savepoint__Output as Savepoint } from '../gen/ckpt/v1/Savepoint.js';
import { deleteSavepoint, listSavepoints, putSavepoint, readSavepoint } from './savepoints.js';
import { bumpEpoch, createJob, reserveIds, updateJob } from './job-records.js';
import { loadJobs } from './job-read.js';
import { KeyLayout } from './keys.js';
import { listSummaries, readManifest } from './manifest-read.js';
import { putStatistics, readStatistics } from './statistics.js';
import type { StoredCheckpointStatistics__Output } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import {
  MAX_RESPONSE_BYTES,
  resolveEtcdStoreOptions,
  type EtcdStoreOptions,
  type ResolvedEtcdStoreOptions,
} from './options.js';
import type { StoreContext } from './store-context.js';

/**
 * `CheckpointStore` on etcd. Every method either fully happens or throws a
 * `CkptError`; requests that would exceed etcd's limits are refused with
 * OVERSIZED before anything is sent.
 */
export class EtcdStore implements CheckpointStore {
  /** The options in force, defaults applied. */
  readonly options: ResolvedEtcdStoreOptions;
  /** The etcd client, created by the store unless one was given. */
  readonly client: Etcd3;
  private readonly ownsClient: boolean;
  private readonly ctx: StoreContext;
  private closed = false;

  /** Validates `options` (MALFORMED naming the option) and creates the client; connects lazily. */
  constructor(options: EtcdStoreOptions) {
    this.options = resolveEtcdStoreOptions(options);
    const { client, hosts, requestTimeoutMs } = this.options;
    this.ownsClient = client === undefined;
    this.client =
      client ??
      new Etcd3({
        ...options.security,
        hosts,
        grpcOptions: { 'grpc.max_receive_message_length': MAX_RESPONSE_BYTES },
        // Unary calls get a deadline each; watch and lease streams must not.
        defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
        faultHandling: { host: etcdHostBreaker },
      });
    this.ctx = {
      kv: this.client.kv,
      keys: new KeyLayout(this.options.prefix),
      options: this.options,
      logger: this.options.logger.child({ component: 'store' }),
    };
  }

  /** The key layout under the configured prefix. */
  get keys(): KeyLayout {
    return this.ctx.keys;
  }

  /**
   * Every job under the prefix, each read consistently at one revision and
   * checked: a job whose records are unreadable or invalid is listed among
   * the quarantined, with its key and problem, and every other job loads.
   * Throws only when etcd cannot be read.
   */
  loadJobs(include?: (jobId: string) => boolean): Promise<LoadedJobs> {
    return loadJobs(this.ctx, include);
  }

  /**
   * Creates the job (epoch 1, latest 0, id floor 1) unless it exists; then
   * returns the stored one. With `guard`, only while the leadership key is
   * unchanged (as every write below), else `LeadershipLostError`. An
   * existing job whose records are invalid is refused with JOB_QUARANTINED
   * (a `CorruptRecordError`); a spec that is invalid or not normalised
   * with MALFORMED.
   */
  createJob(spec: JobSpec, nowMs: number, guard?: LeaderGuard): Promise<{ job: StoredJobState; created: boolean }> {
    return createJob(this.ctx, spec, nowMs, guard);
  }

  /** Replaces spec and state, keeping the creation time; UNKNOWN_JOB if absent. */
  updateJob(jobId: string, spec: JobSpec, state: JobState, guard?: LeaderGuard): Promise<void> {
    return updateJob(this.ctx, jobId, spec, state, guard);
  }

  /** Raises the id floor to `floor`; never lowers it. */
  reserveIds(jobId: string, floor: number, guard?: LeaderGuard): Promise<void> {
    return reserveIds(this.ctx, jobId, floor, guard);
  }

  /**
   * Moves the epoch from `expectedEpoch` to the next; STALE_EPOCH otherwise.
   * With `restoreTo`, also stores that retained checkpoint as the restore
   * point (UNKNOWN_CHECKPOINT when it is not retained).
   */
  bumpEpoch(jobId: string, expectedEpoch: number, guard?: LeaderGuard, restoreTo?: number): Promise<number> {
    return bumpEpoch(this.ctx, jobId, expectedEpoch, guard, restoreTo);
  }

  /**
   * Commits a checkpoint (see `CheckpointStore.commit`). With `guard`, the
   * transaction also requires the leadership key to be unchanged, and a
   * changed one is refused with `LeadershipLostError` (UNAVAILABLE). Does
   * not collect garbage on success: call `collectGarbage` after it.
   */
  prepareSnapshots(snapshots: readonly TaskSnapshot__Output[]): void {
    prepareTaskSnapshots(snapshots);
  }

  commit(request: CommitRequest, guard?: CommitGuard): Promise<CommitResult> {
    return commitCheckpoint(this.ctx, request, guard);
  }

  /**
   * The verified manifest of a retained checkpoint, or undefined. Refuses
   * a manifest above `maxManifestBytes` with OVERSIZED before reading its
   * parts, and anything that does not match its root with a
   * `CorruptRecordError` (INTERNAL) naming job, checkpoint and key.
   */
  readManifest(jobId: string, checkpointId: number): Promise<Manifest | undefined> {
    return readManifest(this.ctx, jobId, checkpointId);
  }

  /**
   * Summaries of the retained checkpoints, newest first, each checked; a
   * bad one is refused with a `CorruptRecordError` (INTERNAL) naming its key.
   */
  listSummaries(jobId: string): Promise<CheckpointSummary[]> {
    return listSummaries(this.ctx, jobId);
  }

  readStatistics(jobId: string): Promise<StoredCheckpointStatistics__Output | undefined> {
    return readStatistics(this.ctx, jobId);
  }

  putStatistics(jobId: string, statistics: StoredCheckpointStatistics__Output, guard?: LeaderGuard): Promise<void> {
    return putStatistics(this.ctx, jobId, statistics, guard);
  }

  /**
   * Deletes the manifest parts of `jobId` that no retained root names.
   * Safe beside a concurrent commit (see `garbage.ts`); a commit during
   * the collection ends it early, leaving the rest to the next call.
   */
  collectGarbage(jobId: string): Promise<GarbageCollection> {
    return collectGarbage(this.ctx, jobId);
  }

  putSavepoint(savepoint: Savepoint, guard?: LeaderGuard): Promise<void> {
    return putSavepoint(this.ctx, savepoint, guard);
  }

  readSavepoint(jobId: string, checkpointId: number): Promise<Savepoint | undefined> {
    return readSavepoint(this.ctx, jobId, checkpointId);
  }

  listSavepoints(jobId: string): Promise<Savepoint[]> {
    return listSavepoints(this.ctx, jobId);
  }

  deleteSavepoint(jobId: string, checkpointId: number, guard?: LeaderGuard): Promise<boolean> {
    return deleteSavepoint(this.ctx, jobId, checkpointId, guard);
  }

  /** Closes the client if the store created it; idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.ownsClient) this.client.close();
    }
    return Promise.resolve();
  }
}

/** Creates an etcd store; see `EtcdStoreOptions` for the options and their defaults. */
export function createEtcdStore(options: EtcdStoreOptions): EtcdStore {
  return new EtcdStore(options);
}
