/**
 * The pieces of this job group's jobs that jobs of other groups name. A
 * state piece belongs to the job whose path it lies under, and only that
 * job's coordinator deletes it, when its shared-state registry says that no
 * retained checkpoint or savepoint names it any more. Jobs name another
 * job's pieces after they were created from its savepoint (the savepoint's
 * own pieces; their incremental checkpoints go on sharing them until a full
 * one). With one group the registry sees every job; with several, a
 * coordinator sees only its group's, so the references from the other
 * groups are read from etcd: the retained manifests of every job of
 * another group, and what they name of this group's jobs. The cleanup
 * takes them as pins of the owning job (`StateCleanupSettings.pinnedHandles`),
 * so that nothing they name is released or swept.
 *
 * Committed manifests never change, so each is read once (up to a bound);
 * the list of jobs and their retained checkpoints is read again when the
 * last reading is older than `freshMs`, and callers meanwhile share one
 * reading. A job created from a savepoint less than `freshMs` before that
 * savepoint is deleted may therefore be missed once; its pieces are then
 * pinned again at the next reading, unless deleted in between.
 */
import type { HandleLike } from '../core/shared-state-registry.js';
import { snapshotUris } from '../core/shared-state-registry.js';
import type { CheckpointStore } from '../core/ports.js';
import { placeOf } from '../coordinator/state-places.js';

/** Manifests whose foreign references are remembered; the oldest are forgotten past it. */
const MAX_REMEMBERED_MANIFESTS = 100_000;
/** Default of `freshMs`. */
export const DEFAULT_FOREIGN_REFERENCES_FRESH_MS = 2000;

/** References from other groups' jobs to the pieces of this group's jobs, read from etcd. */
export class ForeignReferences {
  readonly #store: Pick<CheckpointStore, 'loadJobs' | 'readManifest'>;
  readonly #ours: (jobId: string) => boolean;
  readonly #freshMs: number;
  /** Per manifest (`job/checkpoint`) of another group, the uris it names of this group's jobs. */
  readonly #manifests = new Map<string, readonly string[]>();
  #reading: { atMs: number; refs: Promise<Map<string, HandleLike[]>> } | undefined;

  /** `ours`: whether a job belongs to this group. */
  constructor(
    store: Pick<CheckpointStore, 'loadJobs' | 'readManifest'>,
    ours: (jobId: string) => boolean,
    freshMs = DEFAULT_FOREIGN_REFERENCES_FRESH_MS,
  ) {
    this.#store = store;
    this.#ours = ours;
    this.#freshMs = freshMs;
  }

  /** The handles (uris) of `jobId`'s pieces that retained checkpoints of other groups' jobs name. */
  async of(jobId: string): Promise<HandleLike[]> {
    return (await this.#read()).get(jobId) ?? [];
  }

  #read(): Promise<Map<string, HandleLike[]>> {
    const now = Date.now();
    if (this.#reading !== undefined && now - this.#reading.atMs < this.#freshMs) return this.#reading.refs;
    const refs = this.#readAll();
    this.#reading = { atMs: now, refs };
    // A failed reading is not kept: the next caller reads again.
    refs.catch(() => {
      if (this.#reading?.refs === refs) this.#reading = undefined;
    });
    return refs;
  }

  async #readAll(): Promise<Map<string, HandleLike[]>> {
    const { jobs } = await this.#store.loadJobs((jobId) => !this.#ours(jobId));
    const refs = new Map<string, HandleLike[]>();
    for (const job of jobs) {
      for (const checkpointId of job.retainedCheckpointIds) {
        for (const uri of await this.#named(job.spec.jobId, checkpointId)) {
          const owner = placeOf(uri)?.jobId ?? '';
          const list = refs.get(owner) ?? [];
          list.push({ uri });
          refs.set(owner, list);
        }
      }
    }
    return refs;
  }

  /** The uris of this group's jobs' pieces that a manifest of another group's job names. */
  async #named(jobId: string, checkpointId: number): Promise<readonly string[]> {
    const key = `${jobId}/${checkpointId}`;
    const known = this.#manifests.get(key);
    if (known !== undefined) return known;
    const manifest = await this.#store.readManifest(jobId, checkpointId);
    const uris = snapshotUris(manifest?.tasks ?? []).filter((uri) => {
      const owner = placeOf(uri)?.jobId;
      return owner !== undefined && owner !== jobId && this.#ours(owner);
    });
    // A manifest not found (retention dropped it meanwhile) is not remembered.
    if (manifest === undefined) return uris;
    this.#manifests.set(key, uris);
    if (this.#manifests.size > MAX_REMEMBERED_MANIFESTS) {
      const oldest = this.#manifests.keys().next().value;
      if (oldest !== undefined) this.#manifests.delete(oldest);
    }
    return uris;
  }
}
