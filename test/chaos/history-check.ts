/**
 * Judging etcd's history of a run from the outside. Every change since
 * revision 1 is replayed in revision order (one revision is one
 * transaction), and at every revision the committed state must hold the
 * invariants of DESIGN.md:
 *
 * - a root is written only together with `latest` equal to its id, in the
 *   job's current epoch, under the id floor, with ids strictly increasing
 *   per job (invariants 1 and 3);
 * - its manifest is whole at that revision: inline bytes or every part
 *   present, sizes and hashes as recorded, one entry per task of the job
 *   (invariants 1 and 2);
 * - `latest`, the epoch and the id floor never go backwards; a committed
 *   root is never rewritten; a part stays while a retained root names it
 *   (invariants 2 and 6);
 * - once the coordinators elect a leader, a commit happens only while a
 *   leader key (and so its lease) is alive.
 *
 * Pure: the caller reads the events (`history.ts`).
 */
import { jobGroupOf } from '../../src/core/job-groups.js';
import { createHash } from 'node:crypto';
import type { Manifest__Output as Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { ManifestRoot__Output as ManifestRoot } from '../../src/gen/ckpt/v1/ManifestRoot.js';
import type { StoredJob__Output as StoredJob } from '../../src/gen/ckpt/v1/StoredJob.js';
import { codec } from '../../src/proto/index.js';
import { KeyLayout, unpad, type ParsedKey } from '../../src/store/index.js';

/** One change of one key, as a watch from revision 1 reports it. */
export interface HistoryEvent {
  type: 'put' | 'delete';
  key: string;
  /** Revision of the change (the transaction's revision). */
  revision: number;
  /** Empty for a delete. */
  value: Uint8Array;
  /** Revision at which the key was created; 0 for a delete. */
  createRevision: number;
  /** Lease id as etcd reports it; '0' when none. */
  lease: string;
}

/** What the check is told about the layout. */
export interface HistoryCheckOptions {
  /** The coordinators' etcd prefix, ending with `/`. */
  etcdPrefix: string;
  /** Leased keys starting with it are election keys; '' for every leased key outside the job layout. */
  electionPrefix: string;
  /**
   * Job groups of the coordinators (`--job-groups`): with more than one,
   * each group's election (`<prefix>election/group-<g>/`) is followed on its
   * own, and a job's commits are judged against its group's leader key.
   * Default 1.
   */
  jobGroups?: number;
}

/** What one job's history showed. */
export interface JobHistory {
  jobId: string;
  /** Checkpoints committed, in commit order. */
  committedIds: number[];
  /** Every epoch the job was in, in order. */
  epochs: number[];
  /** The last value of `latest`. */
  latest: number;
}

/** One leadership term as etcd shows it. */
export interface LeaderTerm {
  /** The election key. */
  key: string;
  createRevision: number;
  /** The key's value: the leader's advertised address. */
  holder: string;
  /** The job group whose election it is; 0 with one group. */
  group: number;
}

/** The verdict on a history. */
export interface HistoryReport {
  /** Revisions replayed (the highest revision seen). */
  revisions: number;
  jobs: JobHistory[];
  /** Leadership terms in order (a new election key each); empty without an election. */
  leaders: LeaderTerm[];
  /** Each problem found, with the revision and key it concerns; empty when the history is sound. */
  violations: string[];
}

interface JobState {
  history: JobHistory;
  /** Epoch value now, 0 before it is written. */
  epoch: number;
  idFloor: number;
  lastCommitted: number;
}

const rootCodec = codec<ManifestRoot, ManifestRoot>('ManifestRoot');
const manifestCodec = codec<Manifest, Manifest>('Manifest');
const storedJobCodec = codec<StoredJob, StoredJob>('StoredJob');

/** Replays `events` and reports every violation of the invariants listed above. */
export function checkHistory(events: readonly HistoryEvent[], options: HistoryCheckOptions): HistoryReport {
  return new HistoryChecker(options).run(events);
}

class HistoryChecker {
  readonly #layout: KeyLayout;
  readonly #options: HistoryCheckOptions;
  /** The key-value state at the revision being replayed. */
  readonly #kv = new Map<string, HistoryEvent>();
  readonly #jobs = new Map<string, JobState>();
  readonly #leaders: LeaderTerm[] = [];
  #electionSeen = false;
  readonly #violations: string[] = [];

  constructor(options: HistoryCheckOptions) {
    this.#options = options;
    this.#layout = new KeyLayout(options.etcdPrefix);
  }

  run(events: readonly HistoryEvent[]): HistoryReport {
    const sorted = [...events].sort((a, b) => a.revision - b.revision);
    let revisions = 0;
    for (let i = 0; i < sorted.length;) {
      const revision = (sorted[i] as HistoryEvent).revision;
      let j = i;
      while (j < sorted.length && (sorted[j] as HistoryEvent).revision === revision) j++;
      this.#replay(revision, sorted.slice(i, j));
      revisions = revision;
      i = j;
    }
    return {
      revisions,
      jobs: [...this.#jobs.values()].map((j) => j.history),
      leaders: this.#leaders,
      violations: this.#violations,
    };
  }

  /** Applies one transaction's changes, then judges them against the state before and after. */
  #replay(revision: number, changes: HistoryEvent[]): void {
    const commits: { jobId: string; checkpointId: number; key: string }[] = [];
    for (const change of changes) {
      const parsed = this.#layout.parse(change.key);
      if (parsed !== undefined) this.#judgeChange(revision, change, parsed, commits);
      if (change.type === 'put') this.#kv.set(change.key, change);
      else this.#kv.delete(change.key);
    }
    this.#trackLeader();
    for (const commit of commits) this.#judgeCommit(revision, commit.jobId, commit.checkpointId, commit.key);
    this.#judgeRetainedParts(revision, changes);
  }

  #job(jobId: string): JobState {
    let job = this.#jobs.get(jobId);
    if (job === undefined) {
      job = { history: { jobId, committedIds: [], epochs: [], latest: 0 }, epoch: 0, idFloor: 0, lastCommitted: 0 };
      this.#jobs.set(jobId, job);
    }
    return job;
  }

  /** Checks a single change against the state before its transaction. */
  #judgeChange(
    revision: number,
    change: HistoryEvent,
    parsed: ParsedKey,
    commits: { jobId: string; checkpointId: number; key: string }[],
  ): void {
    const job = this.#job(parsed.jobId);
    const at = `revision ${revision}, ${change.key}`;
    if (change.type === 'delete') {
      if (parsed.kind === 'latest' || parsed.kind === 'epoch' || parsed.kind === 'id-floor') {
        this.#violation(`${at}: ${parsed.kind} of job ${parsed.jobId} deleted`);
      }
      return;
    }
    const text = Buffer.from(change.value).toString();
    switch (parsed.kind) {
      case 'latest': {
        const latest = this.#padded(at, text);
        if (latest < job.history.latest) {
          this.#violation(`${at}: latest went backwards from ${job.history.latest} to ${latest}`);
        }
        job.history.latest = latest;
        return;
      }
      case 'epoch': {
        const epoch = this.#padded(at, text);
        if (epoch <= job.epoch) this.#violation(`${at}: epoch went from ${job.epoch} to ${epoch}, not up`);
        job.epoch = epoch;
        job.history.epochs.push(epoch);
        return;
      }
      case 'id-floor': {
        const floor = this.#padded(at, text);
        if (floor < job.idFloor) this.#violation(`${at}: id floor went backwards from ${job.idFloor} to ${floor}`);
        job.idFloor = floor;
        return;
      }
      case 'root': {
        const before = this.#kv.get(change.key);
        if (before !== undefined && !Buffer.from(before.value).equals(Buffer.from(change.value))) {
          this.#violation(`${at}: committed root of checkpoint ${parsed.checkpointId} rewritten`);
        }
        if (before === undefined)
          commits.push({ jobId: parsed.jobId, checkpointId: parsed.checkpointId, key: change.key });
        return;
      }
      default:
        return;
    }
  }

  /** Checks a root written at `revision` against the state after its transaction. */
  #judgeCommit(revision: number, jobId: string, checkpointId: number, key: string): void {
    const job = this.#job(jobId);
    const at = `revision ${revision}, checkpoint ${checkpointId} of job ${jobId}`;
    if (checkpointId <= job.lastCommitted) {
      this.#violation(`${at}: committed after checkpoint ${job.lastCommitted} (ids must strictly increase)`);
    }
    job.lastCommitted = Math.max(job.lastCommitted, checkpointId);
    job.history.committedIds.push(checkpointId);
    const latest = this.#paddedAt(this.#layout.latest(jobId));
    if (latest !== checkpointId) this.#violation(`${at}: latest is ${latest} in the commit's transaction`);
    if (checkpointId >= job.idFloor) this.#violation(`${at}: id not below the id floor ${job.idFloor}`);
    if (!this.#kv.has(this.#layout.summary(jobId, checkpointId))) this.#violation(`${at}: no summary beside the root`);
    this.#judgeManifest(at, jobId, checkpointId, key, job.epoch);
    if (this.#electionSeen && this.#currentLeader(jobGroupOf(jobId, this.#groups)) === undefined) {
      this.#violation(`${at}: committed while no leader key (and so no leader lease) of its job group was alive`);
    }
  }

  #judgeManifest(at: string, jobId: string, checkpointId: number, key: string, epoch: number): void {
    const root = this.#decode(at, 'root', () => rootCodec.decode((this.#kv.get(key) as HistoryEvent).value));
    if (root === undefined) return;
    if (root.checkpointId !== checkpointId) this.#violation(`${at}: root names checkpoint ${root.checkpointId}`);
    if (root.epoch !== epoch) this.#violation(`${at}: root of epoch ${root.epoch} committed in epoch ${epoch}`);
    const encoded = this.#assemble(at, jobId, root);
    if (encoded === undefined) return;
    const manifest = this.#decode(at, 'manifest', () => manifestCodec.decode(encoded));
    if (manifest === undefined) return;
    if (manifest.jobId !== jobId || manifest.checkpointId !== checkpointId || manifest.epoch !== root.epoch) {
      this.#violation(
        `${at}: manifest names job ${manifest.jobId}, checkpoint ${manifest.checkpointId}, epoch ${manifest.epoch}`,
      );
    }
    this.#judgeTasks(at, jobId, manifest);
  }

  /** The encoded manifest of `root` at this revision, or undefined after reporting why it is torn. */
  #assemble(at: string, jobId: string, root: ManifestRoot): Buffer | undefined {
    const pieces: Buffer[] = [];
    if (root.parts.length === 0) pieces.push(Buffer.from(root.inline));
    for (const [index, part] of root.parts.entries()) {
      const stored = this.#kv.get(this.#layout.part(jobId, part.sha256));
      if (stored === undefined) {
        this.#violation(`${at}: torn manifest, part ${index} (${part.sha256.slice(0, 12)}) missing`);
        return undefined;
      }
      if (stored.value.length !== part.sizeBytes || sha256(stored.value) !== part.sha256) {
        this.#violation(`${at}: torn manifest, part ${index} does not match its size or hash`);
        return undefined;
      }
      pieces.push(Buffer.from(stored.value));
    }
    const encoded = Buffer.concat(pieces);
    if (encoded.length !== root.manifestBytes || sha256(encoded) !== root.manifestSha256) {
      this.#violation(`${at}: torn manifest, the whole does not match the recorded size or hash`);
      return undefined;
    }
    return encoded;
  }

  /** Invariant 1 as etcd shows it: one entry for every task of the job's spec, none else. */
  #judgeTasks(at: string, jobId: string, manifest: Manifest): void {
    const specKv = this.#kv.get(this.#layout.spec(jobId));
    if (specKv === undefined) {
      this.#violation(`${at}: committed for a job without a spec`);
      return;
    }
    const stored = this.#decode(at, 'spec', () => storedJobCodec.decode(specKv.value));
    if (stored === undefined) return;
    const expected = (stored.spec?.tasks ?? []).map((t) => t.taskId).sort();
    const actual = manifest.tasks.map((t) => t.taskId).sort();
    if (expected.join(',') !== actual.join(',')) {
      this.#violation(`${at}: manifest has tasks [${actual.join(', ')}], the job has [${expected.join(', ')}]`);
    }
  }

  /** Every root still retained names parts that are still there. */
  #judgeRetainedParts(revision: number, changes: HistoryEvent[]): void {
    for (const change of changes) {
      if (change.type !== 'delete') continue;
      const parsed = this.#layout.parse(change.key);
      if (parsed?.kind !== 'part') continue;
      for (const [key, kv] of this.#kv) {
        const rootOf = this.#layout.parse(key);
        if (rootOf?.kind !== 'root' || rootOf.jobId !== parsed.jobId) continue;
        const root = this.#decode(`revision ${revision}, ${key}`, 'root', () => rootCodec.decode(kv.value));
        if (root?.parts.some((p) => p.sha256 === parsed.sha256)) {
          this.#violation(
            `revision ${revision}, ${change.key}: part deleted while checkpoint ${rootOf.checkpointId} names it`,
          );
        }
      }
    }
  }

  /** Follows each group's election: its leader is its live election key created first. */
  #trackLeader(): void {
    for (let group = 0; group < this.#groups; group++) {
      const leader = this.#currentLeader(group);
      if (leader === undefined) continue;
      this.#electionSeen = true;
      const last = this.#leaders.findLast((l) => l.group === group);
      if (last?.key === leader.key && last.createRevision === leader.createRevision) continue;
      const holder = Buffer.from(leader.value).toString();
      this.#leaders.push({ key: leader.key, createRevision: leader.createRevision, holder, group });
    }
  }

  get #groups(): number {
    return this.#options.jobGroups ?? 1;
  }

  /** The leader key of `group` (with one group, of the one election). */
  #currentLeader(group: number): HistoryEvent | undefined {
    const groupPrefix = this.#groups > 1 ? `${this.#options.etcdPrefix}election/group-${group}/` : undefined;
    let leader: HistoryEvent | undefined;
    for (const kv of this.#kv.values()) {
      if (!this.#isElectionKey(kv)) continue;
      if (groupPrefix !== undefined && !kv.key.startsWith(groupPrefix)) continue;
      if (leader === undefined || kv.createRevision < leader.createRevision) leader = kv;
    }
    return leader;
  }

  #isElectionKey(kv: HistoryEvent): boolean {
    if (kv.lease === '0' || kv.lease === '') return false;
    if (this.#options.electionPrefix !== '') return kv.key.startsWith(this.#options.electionPrefix);
    return this.#layout.parse(kv.key) === undefined;
  }

  #paddedAt(key: string): number | undefined {
    const kv = this.#kv.get(key);
    return kv === undefined ? undefined : unpad(Buffer.from(kv.value).toString());
  }

  #padded(at: string, text: string): number {
    const n = unpad(text);
    if (n === undefined) {
      this.#violation(`${at}: value ${JSON.stringify(text.slice(0, 40))} is not a padded number`);
      return 0;
    }
    return n;
  }

  #decode<T>(at: string, what: string, decode: () => T): T | undefined {
    try {
      return decode();
    } catch (err) {
      this.#violation(`${at}: ${what} does not decode: ${(err as Error).message}`);
      return undefined;
    }
  }

  #violation(message: string): void {
    this.#violations.push(message);
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Leadership of a job group moving from one holder to another, over every
 * group; a holder winning a new term after its own is no fail-over.
 */
export function failovers(leaders: readonly LeaderTerm[]): number {
  let n = 0;
  const last = new Map<number, string>();
  for (const l of leaders) {
    const before = last.get(l.group);
    if (before !== undefined && before !== l.holder) n += 1;
    last.set(l.group, l.holder);
  }
  return n;
}
