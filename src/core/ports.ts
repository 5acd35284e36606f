/**
 * The coordinator's view of its adapters. The protocol logic depends only on
 * these interfaces; `src/store` implements `CheckpointStore` on etcd and
 * `src/bus` implements `ControlBus` on NATS.
 */
import type { Savepoint__Output as Savepoint } from '../gen/ckpt/v1/Savepoint.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec__Output as JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState__Output as JobState } from '../gen/ckpt/v1/JobState.js';
import type { Manifest__Output as Manifest } from '../gen/ckpt/v1/Manifest.js';
import type { TaskSnapshot__Output } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Trigger } from '../gen/ckpt/v1/Trigger.js';
import type { CheckpointComplete } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { CheckpointAbort } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { Recover } from '../gen/ckpt/v1/Recover.js';
import type { StoredCheckpointStatistics__Output as StoredCheckpointStatistics } from '../gen/ckpt/v1/StoredCheckpointStatistics.js';
import type { RestorePoint } from './restore-point.js';

/** What etcd holds about one job. */
export interface StoredJobState {
  spec: JobSpec;
  state: JobState;
  createdAtMs: number;
  epoch: number;
  /** Latest committed checkpoint id, 0 if none. */
  latestCheckpointId: number;
  /** The epoch the latest checkpoint was committed in, 0 if none. */
  latestCheckpointEpoch: number;
  /** The job's last restore to a checkpoint an operator chose; absent if it was never restored. */
  restorePoint?: RestorePoint;
  /** Every id below the floor may have been used; new ids start at it. */
  idFloor: number;
  /** Ids of the retained committed checkpoints, ascending. */
  retainedCheckpointIds: number[];
  /** The job's checkpoint statistics, when stored and readable (`loadJobs` reads them). */
  statistics?: StoredCheckpointStatistics;
}

/**
 * A job whose records in etcd are unreadable or invalid: the coordinator
 * serves it as JOB_STATE_QUARANTINED with the reason, and runs nothing for it.
 */
export interface QuarantinedJob {
  jobId: string;
  /** What is wrong, naming the key. */
  reason: string;
}

/** Every job under the prefix: those whose records are valid, and those quarantined. */
export interface LoadedJobs {
  jobs: StoredJobState[];
  quarantined: QuarantinedJob[];
}

/**
 * Fences a write to the current leader: it happens only while `key` (the
 * leader's election key, a full etcd key) still has the create revision
 * the leader saw when it was elected. A refused write throws
 * `LeadershipLostError`.
 */
export interface LeaderGuard {
  key: string;
  /** Decimal create revision of `key`. */
  createRevision: string;
}

/** A checkpoint to commit. */
export interface CommitRequest {
  manifest: Manifest;
  /** Stored beside the manifest for listings; state must be COMPLETED. */
  summary: CheckpointSummary;
  /** Committed ids to delete in the same transaction (retention). */
  subsumedCheckpointIds: number[];
  /**
   * The job's checkpoint statistics with this checkpoint, put in the same
   * transaction when they fit (trimmed to fit; left out when nothing fits).
   */
  statistics?: StoredCheckpointStatistics;
}

/** What a successful commit wrote. */
export interface CommitResult {
  /** Size of the encoded manifest and how many parts it was split into (0 when inline). */
  manifestBytes: number;
  manifestParts: number;
  /** etcd revision of the commit transaction. */
  revision: string;
}

/**
 * Consensus storage. Every method either fully happens or throws a
 * `CkptError` (reason UNAVAILABLE with `retryable` for etcd outages,
 * OVERSIZED when a request would exceed etcd's limits, checked before
 * sending, JOB_QUARANTINED when a job's own records it reads are corrupt). Every write takes an optional `LeaderGuard` and throws
 * `LeadershipLostError` when it fails.
 */
export interface CheckpointStore {
  /**
   * Every job under the prefix with its counters. A job whose records are
   * unreadable or invalid does not fail the load: it is listed among the
   * quarantined with the reason. Throws only when etcd cannot be read.
   * With `include`, only the jobs whose id it accepts are read.
   */
  loadJobs(include?: (jobId: string) => boolean): Promise<LoadedJobs>;
  /**
   * Creates a job with epoch 1, latest 0 and id floor 1 if no job of that
   * id exists; returns the stored state, and whether it was created.
   */
  createJob(spec: JobSpec, nowMs: number, guard?: LeaderGuard): Promise<{ job: StoredJobState; created: boolean }>;
  /** Replaces the spec and state of an existing job (resubmit, cancel). */
  updateJob(jobId: string, spec: JobSpec, state: JobState, guard?: LeaderGuard): Promise<void>;
  /** Raises the id floor to `floor` (never lowers it). */
  reserveIds(jobId: string, floor: number, guard?: LeaderGuard): Promise<void>;
  /**
   * Increases the epoch by one if it is still `expectedEpoch`; returns the
   * new epoch. Throws STALE_EPOCH if it was not. With `restoreTo`, the same
   * transaction also requires that checkpoint to be retained (else
   * UNKNOWN_CHECKPOINT) and stores it as the job's restore point in the
   * new epoch.
   */
  bumpEpoch(jobId: string, expectedEpoch: number, guard?: LeaderGuard, restoreTo?: number): Promise<number>;
  /**
   * Commits a checkpoint in one transaction guarded by `latest < id`,
   * `epoch == manifest.epoch` and, with `guard`, the leader's election
   * key; the same transaction moves `latest` and deletes the subsumed
   * checkpoints. A manifest larger than one request is first written as
   * content-addressed parts. Throws CHECKPOINT_COMPLETED, STALE_EPOCH or
   * `LeadershipLostError` if a guard fails.
   */
  commit(request: CommitRequest, guard?: LeaderGuard): Promise<CommitResult>;
  /**
   * Acknowledged snapshots that a later commit's manifest will hold (the
   * same objects, unchanged): the store may encode them now, while the
   * checkpoint waits for its other acknowledgements, rather than all at
   * the commit.
   */
  prepareSnapshots?(snapshots: readonly TaskSnapshot__Output[]): void;
  /**
   * The manifest of a retained checkpoint, verified against its hashes;
   * undefined when it is not retained. A root recording more than the
   * store's maximum is refused with OVERSIZED before any part is read; a
   * corrupt root, part or manifest with a non-retryable INTERNAL error
   * naming the key.
   */
  readManifest(jobId: string, checkpointId: number): Promise<Manifest | undefined>;
  /** Summaries of the retained checkpoints, newest first. */
  listSummaries(jobId: string): Promise<CheckpointSummary[]>;
  /**
   * The job's checkpoint statistics; undefined when none are stored or
   * the record cannot be read (which is logged, never thrown).
   */
  readStatistics(jobId: string): Promise<StoredCheckpointStatistics | undefined>;
  /** Replaces the job's checkpoint statistics; UNKNOWN_JOB when the job does not exist. */
  putStatistics(jobId: string, statistics: StoredCheckpointStatistics, guard?: LeaderGuard): Promise<void>;
  /**
   * Deletes manifest parts that no retained root names; returns how many
   * it deleted and how many parts it left (named, or kept because a commit
   * raced it).
   */
  collectGarbage(jobId: string): Promise<GarbageCollection>;
  /** Stores a savepoint outside the job's checkpoints; refuses one that exists (CHECKPOINT_COMPLETED). */
  putSavepoint(savepoint: Savepoint, guard?: LeaderGuard): Promise<void>;
  /** A savepoint, or undefined when there is none. */
  readSavepoint(jobId: string, checkpointId: number): Promise<Savepoint | undefined>;
  /** The job's savepoints, oldest first. */
  listSavepoints(jobId: string): Promise<Savepoint[]>;
  /** Deletes a savepoint; false when there was none. */
  deleteSavepoint(jobId: string, checkpointId: number, guard?: LeaderGuard): Promise<boolean>;
  close(): Promise<void>;
}

/** What one collection of manifest parts did. */
export interface GarbageCollection {
  deleted: number;
  /** Parts still in etcd after it; 0 means none exist until a commit writes some. */
  remaining: number;
}

/** A state piece found in a store. */
export interface StoredPieceInfo {
  uri: string;
  /** When it was last written, milliseconds since the Unix epoch. */
  modifiedAtMs: number;
  sizeBytes: number;
}

/** What a deletion of pieces did: how many went, which were left and why. */
export interface PieceDiscard {
  deleted: number;
  left: Array<{ uri: string; why: string }>;
}

/** What a purge of stray chunks is allowed: which are old enough, and how many subjects it may inspect. */
export interface StrayChunkLimits {
  /** Chunks are stray only once the newest of their upload is this old. */
  graceMs: number;
  /** Now, milliseconds since the Unix epoch. */
  nowMs: number;
  /** Most chunk subjects whose newest chunk is read; the rest wait for a later purge. */
  maxSubjects: number;
}

/** What a purge of stray chunks in one bucket did. */
export interface StrayChunkPurge {
  /** Chunk subjects purged, one per upload. */
  subjects: number;
  /** Chunk messages purged. */
  chunks: number;
  /**
   * Bytes purged, reckoned as each subject's chunks times the size of its
   * newest one: exact for a killed upload, whose chunks are all full; less
   * for a whole object's chunks, whose last one is short.
   */
  bytes: number;
  /** Subjects no live object names that were inspected (their newest chunk read), failed ones included. */
  inspected: number;
  /** Of those, the ones left because their newest chunk is younger than the grace period. */
  young: number;
  /** Subjects no live object names left uninspected: past `maxSubjects`. */
  deferred: number;
  /** Subjects that could not be inspected or purged, and why. */
  failed: Array<{ subject: string; why: string }>;
}

/**
 * The object store buckets the coordinator reaches itself (NATS
 * JetStream): it lists and deletes the snapshot pieces of a job there.
 * Both refuse a malformed job id; `discard` leaves every uri that is not a
 * snapshot of the job in the bucket, and reports failures per uri.
 */
export interface StatePieces {
  list(bucket: string, jobId: string): Promise<StoredPieceInfo[]>;
  discard(bucket: string, jobId: string, uris: readonly string[]): Promise<PieceDiscard>;
  /**
   * Purges the chunks in `bucket` that no live object names and whose
   * upload wrote its last chunk longer than `limits.graceMs` ago: what a
   * writer killed during a put (or between a delete and its chunk purge)
   * leaves. Failures of single subjects are reported, not thrown.
   */
  purgeStrayChunks(bucket: string, limits: StrayChunkLimits): Promise<StrayChunkPurge>;
}

/** The NATS barrier plane as the coordinator uses it. */
export interface ControlBus {
  /** `<subjectPrefix>.<jobId>`: the job's control subjects start with it. */
  controlPrefix(jobId: string): string;
  publishTrigger(message: Trigger & { jobId: string }): Promise<void>;
  publishComplete(message: CheckpointComplete & { jobId: string }): Promise<void>;
  publishAbort(message: CheckpointAbort & { jobId: string }): Promise<void>;
  publishRecover(message: Recover & { jobId: string }): Promise<void>;
  close(): Promise<void>;
}
