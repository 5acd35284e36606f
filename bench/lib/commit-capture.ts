/**
 * What the coordinator writes to etcd to commit a checkpoint, read from
 * etcd itself, and the same write replayed by the floor. A watch on the
 * coordinator's prefix sees every revision; the revision that puts a job's
 * `latest` key is the commit transaction, and its events are its puts (key
 * and value bytes) and deletes. The replay sends one transaction of those
 * keys and values under another prefix of the same length, guarded as the
 * store guards a commit (`src/store/commit.ts`): `latest < id`,
 * `epoch == e`, and the create revision of a leadership key; its failure
 * branch reads those three keys, as the store's does.
 */
import { Etcd3, type IKeyValue, type IWatchResponse, type Watcher } from 'etcd3';
import { pad } from '../../src/store/index.js';

/** Deadline of every etcd call, as the coordinator's default `etcdTimeoutMs`. */
const ETCD_DEADLINE_MS = 5000;
/** How long `commitOf` waits for a commit to be seen. */
const CAPTURE_TIMEOUT_MS = 30_000;
/** The last segment of the key a commit moves. */
const LATEST_SUFFIX = '/latest';

/** One commit transaction as etcd recorded it. */
export interface CapturedCommit {
  /** The checkpoint it committed (the value of `latest`). */
  checkpointId: number;
  /** The keys and values put, in the order etcd reported them. */
  puts: ReadonlyArray<{ key: string; value: Buffer }>;
  /** The keys deleted. */
  deletes: readonly string[];
  /** Keys plus values put, in bytes. */
  putBytes: number;
}

/** Watches a coordinator's etcd prefix and keeps each commit until it is asked for. */
export class CommitCapture {
  readonly #watcher: Watcher;
  /** By `<job>/<checkpoint id>`. */
  readonly #commits = new Map<string, CapturedCommit>();
  readonly #waiting = new Map<string, (commit: CapturedCommit) => void>();

  private constructor(watcher: Watcher) {
    this.#watcher = watcher;
    watcher.on('data', (response: IWatchResponse) => this.#onResponse(response));
  }

  /** Starts watching `prefix` (every key the coordinator writes) with `client`. */
  static async start(client: Etcd3, prefix: string): Promise<CommitCapture> {
    return new CommitCapture(await client.watch().prefix(prefix).create());
  }

  /** Resolves with the commit of `jobId`'s `checkpointId` once etcd has reported it; rejects after 30 s. */
  async commitOf(jobId: string, checkpointId: number): Promise<CapturedCommit> {
    const name = `${jobId}/${checkpointId}`;
    const seen = this.#commits.get(name);
    this.#commits.delete(name);
    if (seen !== undefined) return seen;
    return new Promise<CapturedCommit>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(name);
        reject(new Error(`no commit of checkpoint ${checkpointId} seen in etcd within ${CAPTURE_TIMEOUT_MS} ms`));
      }, CAPTURE_TIMEOUT_MS);
      this.#waiting.set(name, (commit) => {
        clearTimeout(timer);
        resolve(commit);
      });
    });
  }

  /** Ends the watch. */
  async close(): Promise<void> {
    await this.#watcher.cancel();
  }

  /** A response carries whole revisions; each revision that puts `latest` is a commit. */
  #onResponse(response: IWatchResponse): void {
    const byRevision = new Map<string, IWatchResponse['events']>();
    for (const event of response.events) {
      const events = byRevision.get(event.kv.mod_revision) ?? [];
      events.push(event);
      byRevision.set(event.kv.mod_revision, events);
    }
    for (const events of byRevision.values()) {
      const latest = events.find((e) => e.type === 'Put' && e.kv.key.toString().endsWith(LATEST_SUFFIX));
      if (latest === undefined) continue;
      const jobId = latest.kv.key.toString().slice(0, -LATEST_SUFFIX.length).replace(/^.*\//, '');
      this.#record(jobId, Number(latest.kv.value.toString()), events);
    }
  }

  #record(jobId: string, checkpointId: number, events: IWatchResponse['events']): void {
    const puts = events.filter((e) => e.type === 'Put').map((e) => ({ key: e.kv.key.toString(), value: e.kv.value }));
    const commit: CapturedCommit = {
      checkpointId,
      puts,
      deletes: events.filter((e) => e.type === 'Delete').map((e) => e.kv.key.toString()),
      putBytes: puts.reduce((sum, p) => sum + Buffer.byteLength(p.key) + p.value.length, 0),
    };
    const name = `${jobId}/${checkpointId}`;
    const waiting = this.#waiting.get(name);
    this.#waiting.delete(name);
    if (waiting === undefined) this.#commits.set(name, commit);
    else waiting(commit);
  }
}

/** Sends captured commits again under another prefix, as one guarded transaction each. */
export class CommitReplay {
  readonly #client: Etcd3;
  readonly #from: string;
  readonly #to: string;
  #leader: { key: string; createRevision: string } | undefined;
  #epochValue: Buffer | undefined;

  /** Replays keys under `from` (the coordinator's prefix) as keys under `to`, a prefix of the same length. */
  constructor(client: Etcd3, from: string, to: string) {
    if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error(`${from} and ${to} differ in length`);
    this.#client = client;
    this.#from = from;
    this.#to = to;
  }

  /** An etcd client with the coordinator's default deadline on every call. */
  static client(hosts: string[]): Etcd3 {
    return new Etcd3({ hosts, defaultCallOptions: () => ({ deadline: new Date(Date.now() + ETCD_DEADLINE_MS) }) });
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
    const leaderKey = `${this.#to}election/floor`;
    await this.#client.put(leaderKey).value('floor');
    const kv: IKeyValue | undefined = (await this.#client.get(leaderKey).exec()).kvs[0];
    if (kv === undefined) throw new Error(`${leaderKey} was not written`);
    this.#leader = { key: leaderKey, createRevision: kv.create_revision };
  }

  /** One transaction with the commit's puts and deletes (of whole checkpoint prefixes, as the store deletes). */
  async replay(commit: CapturedCommit): Promise<void> {
    const leader = this.#leader;
    const epochValue = this.#epochValue;
    if (leader === undefined || epochValue === undefined) throw new Error('CommitReplay.prepare was not called');
    const latest = this.#latestKey(commit);
    const jobDir = latest.slice(0, -'latest'.length);
    const latestValue = commit.puts.find((p) => this.#map(p.key) === latest)?.value ?? Buffer.alloc(0);
    const deleted = new Set(commit.deletes.map((key) => this.#map(key).replace(/[^/]*$/, '')));
    const response = await this.#client
      .if(latest, 'Value', '<', latestValue)
      .and(`${jobDir}epoch`, 'Value', '==', epochValue)
      .and(leader.key, 'Create', '==', leader.createRevision)
      .then(
        ...commit.puts.map((p) => this.#client.put(this.#map(p.key)).value(p.value)),
        ...[...deleted].map((dir) => this.#client.delete().prefix(dir)),
      )
      .else(this.#client.get(latest), this.#client.get(`${jobDir}epoch`), this.#client.get(leader.key))
      .commit();
    if (!response.succeeded) {
      const found = response.responses.map((r) => {
        const kv = r.response_range.kvs[0];
        return kv === undefined
          ? 'absent'
          : `${kv.key.toString()}=${kv.value.toString()} (created ${kv.create_revision})`;
      });
      throw new Error(
        `the replay of checkpoint ${commit.checkpointId}'s commit (latest < ${latestValue.toString()}) was ` +
          `refused; found ${found.join(', ')}`,
      );
    }
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
