/**
 * Which state pieces are still needed. Incremental snapshots share pieces:
 * a piece uploaded for one checkpoint is named (in `StateHandle.shared`)
 * by later ones, of the same task or, after a restore from a savepoint or
 * a rescale, of other tasks and jobs. So a piece may go only when no
 * retained checkpoint and no savepoint of any job names it any more. This
 * registry counts, for every uri, the holders that name it: each retained
 * checkpoint, and each job's pinned handles (its savepoints). It decides;
 * it deletes nothing and does no I/O. The coordinator rebuilds it from
 * etcd when it becomes leader, so its answers survive a fail-over.
 */
import type { StateHandle__Output } from '../gen/ckpt/v1/StateHandle.js';

/** A handle as the registry reads it: its uri and the pieces it builds on. */
export type HandleLike = Pick<StateHandle__Output, 'uri'> & { shared?: readonly HandleLike[] | null };

/** A task snapshot as the registry reads it. */
export type SnapshotLike = { state?: HandleLike | null };

/** Everything a job's retained state is rebuilt from. */
export interface RegistryJob {
  jobId: string;
  /** The job's retained manifests. */
  manifests: ReadonlyArray<{ checkpointId: number; tasks: readonly SnapshotLike[] }>;
  /** Handles the job's savepoints name; none until savepoints exist. */
  pinned?: readonly HandleLike[];
}

/**
 * Every distinct uri a handle names: its own and, recursively, those of the
 * pieces it shares. Empty uris (stateless tasks) are left out.
 */
export function handleUris(handles: readonly HandleLike[]): string[] {
  const uris = new Set<string>();
  const stack = [...handles];
  for (let handle = stack.pop(); handle !== undefined; handle = stack.pop()) {
    if (handle.uri !== '') uris.add(handle.uri);
    if (handle.shared !== undefined && handle.shared !== null && handle.shared.length > 0) stack.push(...handle.shared);
  }
  return [...uris];
}

/** The distinct uris a manifest's (or an acknowledgement's) snapshots name. */
export function snapshotUris(tasks: readonly SnapshotLike[]): string[] {
  // A loop, not a flatMap: a manifest of 100,000 tasks would make as many arrays of one handle.
  const handles: HandleLike[] = [];
  for (const t of tasks) if (t.state) handles.push(t.state);
  return handleUris(handles);
}

/** The uris of the shared pieces the snapshots build on, recursively; not their own new pieces. */
export function sharedUris(tasks: readonly SnapshotLike[]): string[] {
  return handleUris(tasks.flatMap((t) => t.state?.shared ?? []));
}

/** A job's holders: its retained checkpoints by id, and its pinned savepoint handles. */
interface JobHolders {
  checkpoints: Map<number, readonly string[]>;
  pinned: readonly string[];
}

/** Reference counts of state pieces over every job's retained checkpoints and savepoints. */
export class SharedStateRegistry {
  readonly #counts = new Map<string, number>();
  readonly #jobs = new Map<string, JobHolders>();

  /** How many distinct pieces are live. */
  get size(): number {
    return this.#counts.size;
  }

  /** True while a retained checkpoint or a savepoint names `uri`. */
  isLive(uri: string): boolean {
    return this.#counts.has(uri);
  }

  /** Ids of the checkpoints registered for a job, ascending. */
  checkpointIds(jobId: string): number[] {
    return [...(this.#jobs.get(jobId)?.checkpoints.keys() ?? [])].sort((a, b) => a - b);
  }

  /** Every live uri a job's checkpoints and savepoints name. */
  urisOf(jobId: string): string[] {
    const holders = this.#jobs.get(jobId);
    if (holders === undefined) return [];
    return [...new Set([...[...holders.checkpoints.values()].flat(), ...holders.pinned])];
  }

  /**
   * The shared pieces that `tasks` build on but nothing retained names any
   * more: retention released them, so they may be deleted already. A
   * checkpoint naming any cannot be committed.
   */
  releasedShared(tasks: readonly SnapshotLike[]): string[] {
    return sharedUris(tasks).filter((uri) => !this.isLive(uri));
  }

  /** A committed checkpoint: every uri it names gains a holder. Registering it again changes nothing. */
  register(jobId: string, checkpointId: number, tasks: readonly SnapshotLike[]): void {
    if (this.#holders(jobId).checkpoints.has(checkpointId)) return;
    this.registerUris(jobId, checkpointId, snapshotUris(tasks));
  }

  /** `register` with the checkpoint's uris (`snapshotUris` of its tasks) already listed. */
  registerUris(jobId: string, checkpointId: number, uris: readonly string[]): void {
    const holders = this.#holders(jobId);
    if (holders.checkpoints.has(checkpointId)) return;
    holders.checkpoints.set(checkpointId, uris);
    this.#add(uris);
  }

  /**
   * Checkpoints retention dropped: the uris they named lose a holder.
   * Returns the uris no holder names any more, to delete.
   */
  unregister(jobId: string, checkpointIds: readonly number[]): string[] {
    const holders = this.#jobs.get(jobId);
    if (holders === undefined) return [];
    const released: string[] = [];
    for (const id of checkpointIds) {
      const uris = holders.checkpoints.get(id);
      if (uris === undefined) continue;
      holders.checkpoints.delete(id);
      released.push(...this.#remove(uris));
    }
    return released;
  }

  /**
   * Replaces the handles a job's savepoints pin. Returns the uris that were
   * pinned, are no longer, and that nothing else names.
   */
  pin(jobId: string, handles: readonly HandleLike[]): string[] {
    const holders = this.#holders(jobId);
    const before = holders.pinned;
    holders.pinned = handleUris(handles);
    this.#add(holders.pinned);
    return this.#remove(before);
  }

  /** The uris `forgetJob` would release: those no savepoint and no other job's checkpoint names. Changes nothing. */
  heldOnlyBy(jobId: string): string[] {
    const holders = this.#jobs.get(jobId);
    if (holders === undefined) return [];
    const within = new Map<string, number>();
    for (const uris of holders.checkpoints.values()) {
      for (const uri of uris) within.set(uri, (within.get(uri) ?? 0) + 1);
    }
    return [...within].filter(([uri, n]) => this.#counts.get(uri) === n).map(([uri]) => uri);
  }

  /**
   * Drops every retained checkpoint of a job (its state goes); its
   * savepoints stay pinned, as they outlive the job. Returns the uris
   * nothing names any more.
   */
  forgetJob(jobId: string): string[] {
    const holders = this.#jobs.get(jobId);
    if (holders === undefined) return [];
    const released = [...holders.checkpoints.values()].flatMap((uris) => this.#remove(uris));
    holders.checkpoints.clear();
    return released;
  }

  /** Forgets everything and registers `jobs` afresh: what a new leader reads from etcd. */
  rebuild(jobs: readonly RegistryJob[]): void {
    this.#counts.clear();
    this.#jobs.clear();
    for (const job of jobs) this.load(job);
  }

  /** Registers one job's retained manifests and pins beside what is registered. */
  load(job: RegistryJob): void {
    for (const manifest of job.manifests) this.register(job.jobId, manifest.checkpointId, manifest.tasks);
    if (job.pinned !== undefined) this.pin(job.jobId, job.pinned);
  }

  #holders(jobId: string): JobHolders {
    let holders = this.#jobs.get(jobId);
    if (holders === undefined) {
      holders = { checkpoints: new Map(), pinned: [] };
      this.#jobs.set(jobId, holders);
    }
    return holders;
  }

  #add(uris: readonly string[]): void {
    for (const uri of uris) this.#counts.set(uri, (this.#counts.get(uri) ?? 0) + 1);
  }

  /** Takes one holder from each uri; returns those left with none. */
  #remove(uris: readonly string[]): string[] {
    const released: string[] = [];
    for (const uri of uris) {
      const count = (this.#counts.get(uri) ?? 0) - 1;
      if (count > 0) this.#counts.set(uri, count);
      else if (this.#counts.delete(uri)) released.push(uri);
    }
    return released;
  }
}
