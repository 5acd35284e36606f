/**
 * What the coordinator writes to etcd to commit a checkpoint, read from
 * etcd itself, and the same write replayed by a floor. A watch on the
 * coordinator's prefix sees every revision; the revision that puts a job's
 * `latest` key is the commit transaction, and its events are its puts (key
 * and value bytes) and deletes. A manifest too large for one request is
 * stored as parts, each its own put before the transaction: the watch
 * keeps, per job, the part puts seen since its last commit, and they
 * belong to that commit.
 *
 * A replay sends one transaction of those keys and values under another
 * prefix of the same length, guarded as the store guards a commit
 * (`src/store/commit.ts`): `latest < id`, `epoch == e`, the create revision
 * of a leadership key, and every part existing; its failure branch reads
 * `latest`, the epoch and the leadership key, as the store's does.
 * `CommitReplay` here replays inline manifests for one job;
 * `scale-commits.ts` writes parts first, for many jobs.
 */
import { Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import { etcdHostBreaker, pad } from '../../src/store/index.js';

/** Deadline of every etcd call but streams, as the coordinator's default `etcdTimeoutMs`. */
const ETCD_DEADLINE_MS = 5000;

/**
 * An etcd client for a capture and its replays, as the coordinator's own:
 * each call has a deadline of `deadlineMs`, but not a stream, so that the
 * watch is not cut every few seconds. Any watch response is taken: after a
 * reconnect etcd sends every revision missed meanwhile in one response,
 * which holds all the parts of a manifest written meanwhile (several MiB
 * at 100,000 tasks); above gRPC's default 4 MiB it was refused, the watch
 * reconnected from the same revision and was refused again, for good.
 */
export function captureClient(hosts: string[], deadlineMs = ETCD_DEADLINE_MS): Etcd3 {
  return new Etcd3({
    hosts,
    // The coordinator's policy towards a failing host: etcd3's default refuses every call for 5 s.
    faultHandling: { host: etcdHostBreaker },
    defaultCallOptions: (call) => (call.isStream ? {} : { deadline: Date.now() + deadlineMs }),
    grpcOptions: { 'grpc.max_receive_message_length': -1 },
  });
}
/** How long `commitOf` waits for a commit to be seen, unless told. */
const DEFAULT_CAPTURE_TIMEOUT_MS = 30_000;
/** The last segment of the key a commit moves. */
const LATEST_SUFFIX = '/latest';
/** Where a job's manifest parts live, inside its directory. */
const PARTS_SEGMENT = '/parts/';

/** A key and its value as etcd reported them. */
export interface CapturedKey {
  key: string;
  value: Buffer;
}

/** One commit as etcd recorded it: the parts written before it and its transaction. */
export interface CapturedCommit {
  jobId: string;
  /** The checkpoint it committed (the value of `latest`). */
  checkpointId: number;
  /** Manifest parts put since the job's previous commit, in the order etcd reported them. */
  parts: readonly CapturedKey[];
  /** The keys and values the transaction put, in the order etcd reported them. */
  puts: readonly CapturedKey[];
  /** The keys the transaction deleted. */
  deletes: readonly string[];
  /** Keys plus values of the parts, in bytes. */
  partBytes: number;
  /** Keys plus values the transaction put, in bytes. */
  putBytes: number;
}

/** Watches a coordinator's etcd prefix and keeps each commit until it is asked for. */
export class CommitCapture {
  readonly #watcher: Watcher;
  readonly #timeoutMs: number;
  /** Part puts not yet followed by their commit, by job directory. */
  readonly #parts = new Map<string, CapturedKey[]>();
  /** By `<job>/<checkpoint id>`. */
  readonly #commits = new Map<string, CapturedCommit>();
  /** By `<job>/<checkpoint id>`, or `<job>/next` for `nextCommit`. */
  readonly #waiting = new Map<string, (commit: CapturedCommit) => void>();
  /** How often the watch stream broke (etcd3 reconnects it from the last revision seen), and why last. */
  #disconnects = 0;
  #lastError = '';

  private constructor(watcher: Watcher, timeoutMs: number) {
    this.#watcher = watcher;
    this.#timeoutMs = timeoutMs;
    watcher.on('data', (response: IWatchResponse) => this.#onResponse(response));
    watcher.on('disconnected', (err: Error) => {
      this.#disconnects += 1;
      this.#lastError = err.message;
    });
  }

  /**
   * Starts watching every key under `prefix` (the coordinator's, its
   * `jobs/`, or one job's directory) with `client`; `commitOf` gives up
   * after `timeoutMs` (default 30 s).
   */
  static async start(client: Etcd3, prefix: string, timeoutMs = DEFAULT_CAPTURE_TIMEOUT_MS): Promise<CommitCapture> {
    return new CommitCapture(await client.watch().prefix(prefix).create(), timeoutMs);
  }

  /** Resolves with the commit of `jobId`'s `checkpointId` once etcd has reported it; rejects after the timeout. */
  async commitOf(jobId: string, checkpointId: number): Promise<CapturedCommit> {
    const name = `${jobId}/${checkpointId}`;
    const seen = this.#commits.get(name);
    this.#commits.delete(name);
    if (seen !== undefined) return seen;
    return new Promise<CapturedCommit>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(name);
        const broke =
          this.#disconnects === 0 ? '' : `; the watch broke ${this.#disconnects} time(s), last: ${this.#lastError}`;
        reject(
          new Error(`no commit of checkpoint ${checkpointId} of ${jobId} seen within ${this.#timeoutMs} ms${broke}`),
        );
      }, this.#timeoutMs);
      this.#waiting.set(name, (commit) => {
        clearTimeout(timer);
        resolve(commit);
      });
    });
  }

  /** The next commit of `jobId` seen after this call. */
  nextCommit(jobId: string): Promise<CapturedCommit> {
    return new Promise<CapturedCommit>((resolve) => this.#waiting.set(`${jobId}/next`, resolve));
  }

  /** Forgets the commits not asked for. */
  forget(): void {
    this.#commits.clear();
  }

  /** Ends the watch. */
  async close(): Promise<void> {
    await this.#watcher.cancel();
  }

  /** A response carries whole revisions; each revision that puts `latest` is a commit, others may put parts. */
  #onResponse(response: IWatchResponse): void {
    const byRevision = new Map<string, IWatchResponse['events']>();
    for (const event of response.events) {
      const events = byRevision.get(event.kv.mod_revision) ?? [];
      events.push(event);
      byRevision.set(event.kv.mod_revision, events);
    }
    for (const events of byRevision.values()) {
      const latest = events.find((e) => e.type === 'Put' && e.kv.key.toString().endsWith(LATEST_SUFFIX));
      if (latest === undefined) {
        for (const e of events) if (e.type === 'Put') this.#part(e.kv);
        continue;
      }
      const jobDir = latest.kv.key.toString().slice(0, -LATEST_SUFFIX.length);
      this.#record(jobDir, Number(latest.kv.value.toString()), events);
    }
  }

  #part(kv: IKeyValue): void {
    const key = kv.key.toString();
    const at = key.indexOf(PARTS_SEGMENT);
    if (at < 0) return;
    const jobDir = key.slice(0, at);
    const parts = this.#parts.get(jobDir) ?? [];
    parts.push({ key, value: kv.value });
    this.#parts.set(jobDir, parts);
  }

  #record(jobDir: string, checkpointId: number, events: IWatchResponse['events']): void {
    const jobId = jobDir.replace(/^.*\//, '');
    const parts = this.#parts.get(jobDir) ?? [];
    this.#parts.delete(jobDir);
    const puts = events.filter((e) => e.type === 'Put').map((e) => ({ key: e.kv.key.toString(), value: e.kv.value }));
    const commit: CapturedCommit = {
      jobId,
      checkpointId,
      parts,
      puts,
      deletes: events.filter((e) => e.type === 'Delete').map((e) => e.kv.key.toString()),
      partBytes: keyValueBytes(parts),
      putBytes: keyValueBytes(puts),
    };
    const next = this.#waiting.get(`${jobId}/next`);
    if (next !== undefined) {
      this.#waiting.delete(`${jobId}/next`);
      next(commit);
      return;
    }
    const name = `${jobId}/${checkpointId}`;
    const waiting = this.#waiting.get(name);
    this.#waiting.delete(name);
    if (waiting === undefined) this.#commits.set(name, commit);
    else waiting(commit);
  }
}

function keyValueBytes(list: readonly CapturedKey[]): number {
  return list.reduce((sum, p) => sum + Buffer.byteLength(p.key) + p.value.length, 0);
}

/** A leadership key a floor's replays compare, as the store compares the leader's election key. */
export interface FloorLeader {
  key: string;
  createRevision: string;
}

/** Writes the leadership key `<prefix>election/floor` and reads its create revision. */
export async function writeFloorLeader(client: Etcd3, prefix: string): Promise<FloorLeader> {
  const key = `${prefix}election/floor`;
  await client.put(key).value('floor');
  const kv: IKeyValue | undefined = (await client.get(key).exec()).kvs[0];
  if (kv === undefined) throw new Error(`${key} was not written`);
  return { key, createRevision: kv.create_revision };
}

/** One replayed commit, its keys already under the floor's prefix. */
export interface ReplayedCommit {
  /** The job directory's `latest` key; the transaction requires it below `below`. */
  latest: string;
  below: Buffer | string;
  /** The job directory's epoch key and the value it must hold. */
  epoch: { key: string; value: Buffer | string };
  leader: FloorLeader;
  /** Parts the transaction requires to exist. */
  partKeys: readonly string[];
  puts: readonly CapturedKey[];
  /** Prefixes deleted whole (a subsumed checkpoint's directory, as the store deletes). */
  deletePrefixes: readonly string[];
}

/**
 * Sends `commit` as one transaction guarded as the store guards a commit;
 * throws, naming what the failure branch read, when etcd refuses it.
 */
export async function replayTransaction(client: Etcd3, commit: ReplayedCommit, what: string): Promise<void> {
  const { latest, epoch, leader } = commit;
  let txn = client
    .if(latest, 'Value', '<', commit.below)
    .and(epoch.key, 'Value', '==', epoch.value)
    .and(leader.key, 'Create', '==', leader.createRevision);
  for (const key of commit.partKeys) txn = txn.and(key, 'Version', '>', 0);
  const response = await txn
    .then(
      ...commit.puts.map((p) => client.put(p.key).value(p.value)),
      ...commit.deletePrefixes.map((prefix) => client.delete().prefix(prefix)),
    )
    .else(client.get(latest), client.get(epoch.key), client.get(leader.key))
    .commit();
  if (response.succeeded) return;
  const found = response.responses.map((r) => {
    const kv = r.response_range.kvs[0];
    return kv === undefined ? 'absent' : `${kv.key.toString()}=${kv.value.toString()} (created ${kv.create_revision})`;
  });
  throw new Error(`the replay of ${what} (latest < ${commit.below.toString()}) was refused; found ${found.join(', ')}`);
}

/** The directories of deleted keys: a commit deletes subsumed checkpoints' directories whole. */
export function deletedDirectories(deletes: readonly string[], map: (key: string) => string): string[] {
  return [...new Set(deletes.map((key) => map(key).replace(/[^/]*$/, '')))];
}

/** Sends captured commits of one job again under another prefix, as one guarded transaction each. */
export class CommitReplay {
  readonly #client: Etcd3;
  readonly #from: string;
  readonly #to: string;
  #leader: FloorLeader | undefined;
  #epochValue: Buffer | undefined;

  /** Replays keys under `from` (the coordinator's prefix) as keys under `to`, a prefix of the same length. */
  constructor(client: Etcd3, from: string, to: string) {
    if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error(`${from} and ${to} differ in length`);
    this.#client = client;
    this.#from = from;
    this.#to = to;
  }

  /** An etcd client with the coordinator's default deadline on every call but streams (`captureClient`). */
  static client(hosts: string[]): Etcd3 {
    return captureClient(hosts);
  }

  /**
   * Writes what the guards compare, from the first commit to be replayed:
   * `latest` below its id, the epoch the coordinator's job has in etcd, and
   * a leadership key.
   */
  async prepare(first: CapturedCommit): Promise<void> {
    const latest = this.#latestKey(first);
    const jobDir = latest.slice(0, -'latest'.length);
    const epochKey = this.#from + `${jobDir}epoch`.slice(this.#to.length);
    const epochValue = await this.#client.get(epochKey).buffer();
    if (epochValue === null) throw new Error(`the coordinator wrote no ${epochKey}`);
    this.#epochValue = epochValue;
    await this.#client.put(latest).value(pad(0));
    await this.#client.put(`${jobDir}epoch`).value(epochValue);
    this.#leader = await writeFloorLeader(this.#client, this.#to);
  }

  /** One transaction with the commit's puts and deletes (of whole checkpoint prefixes, as the store deletes). */
  async replay(commit: CapturedCommit): Promise<void> {
    const leader = this.#leader;
    const epochValue = this.#epochValue;
    if (leader === undefined || epochValue === undefined) throw new Error('CommitReplay.prepare was not called');
    const latest = this.#latestKey(commit);
    const jobDir = latest.slice(0, -'latest'.length);
    const map = (key: string): string => this.#map(key);
    await replayTransaction(
      this.#client,
      {
        latest,
        below: commit.puts.find((p) => map(p.key) === latest)?.value ?? Buffer.alloc(0),
        epoch: { key: `${jobDir}epoch`, value: epochValue },
        leader,
        // Inline manifests: this replay writes no parts, and so requires none.
        partKeys: [],
        puts: commit.puts.map((p) => ({ key: map(p.key), value: p.value })),
        deletePrefixes: deletedDirectories(commit.deletes, map),
      },
      `checkpoint ${commit.checkpointId}'s commit`,
    );
  }

  #latestKey(commit: CapturedCommit): string {
    const put = commit.puts.find((p) => p.key.endsWith(LATEST_SUFFIX));
    if (put === undefined) throw new Error(`commit of checkpoint ${commit.checkpointId} puts no latest key`);
    return this.#map(put.key);
  }

  #map(key: string): string {
    if (!key.startsWith(this.#from)) throw new Error(`${key} is not under ${this.#from}`);
    return this.#to + key.slice(this.#from.length);
  }
}
