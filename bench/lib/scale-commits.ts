/**
 * What the coordinator writes to etcd to commit a checkpoint, parts
 * included, read from etcd itself, and the same writes replayed by the
 * floor. As `commit-capture.ts`, but a manifest too large for one request
 * is stored as parts, each its own put before the transaction: those puts
 * belong to the commit too. A watch on one prefix keeps, per job, the part
 * puts seen since its last commit; the revision that puts the job's
 * `latest` key is the commit transaction. The replay writes the same parts
 * (as many at once as the store writes them) and then one transaction of
 * the same keys and values, guarded as the store guards a commit
 * (`latest < id`, `epoch == e`, a leadership key's create revision, and
 * every part existing).
 */
import { performance } from 'node:perf_hooks';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { pad } from '../../src/store/index.js';

/** How many parts the store writes at once (its default `partConcurrency`). */
export const PART_CONCURRENCY = 4;
/** How long `commitOf` waits for a commit to be seen. */
const CAPTURE_TIMEOUT_MS = 60_000;
const LATEST_SUFFIX = '/latest';
const PARTS_SEGMENT = '/parts/';

/** One commit as etcd recorded it: the parts written before it and its transaction. */
export interface ScaleCommit {
  jobId: string;
  checkpointId: number;
  parts: ReadonlyArray<{ key: string; value: Buffer }>;
  puts: ReadonlyArray<{ key: string; value: Buffer }>;
  deletes: readonly string[];
  /** Keys plus values of the parts. */
  partBytes: number;
  /** Keys plus values of the transaction's puts. */
  putBytes: number;
}

/** Watches a prefix of the coordinator's keys and keeps each commit until it is asked for. */
export class ScaleCommitCapture {
  readonly #watcher: Watcher;
  readonly #parts = new Map<string, Array<{ key: string; value: Buffer }>>();
  readonly #commits = new Map<string, ScaleCommit>();
  readonly #waiting = new Map<string, (commit: ScaleCommit) => void>();

  private constructor(watcher: Watcher) {
    this.#watcher = watcher;
    watcher.on('data', (response: IWatchResponse) => this.#onResponse(response));
  }

  /** Watches every key under `prefix`, e.g. `/<p>/jobs/` or one job's directory. */
  static async start(client: Etcd3, prefix: string): Promise<ScaleCommitCapture> {
    return new ScaleCommitCapture(await client.watch().prefix(prefix).create());
  }

  /** Resolves with the commit of `jobId`'s `checkpointId`, once seen; rejects after a minute. */
  async commitOf(jobId: string, checkpointId: number): Promise<ScaleCommit> {
    const name = `${jobId}/${checkpointId}`;
    const seen = this.#commits.get(name);
    this.#commits.delete(name);
    if (seen !== undefined) return seen;
    return new Promise<ScaleCommit>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(name);
        reject(new Error(`no commit of checkpoint ${checkpointId} of ${jobId} seen within ${CAPTURE_TIMEOUT_MS} ms`));
      }, CAPTURE_TIMEOUT_MS);
      this.#waiting.set(name, (commit) => {
        clearTimeout(timer);
        resolve(commit);
      });
    });
  }

  /** The next commit of `jobId` seen after this call. */
  nextCommit(jobId: string): Promise<ScaleCommit> {
    return new Promise<ScaleCommit>((resolve) => this.#waiting.set(`${jobId}/next`, resolve));
  }

  /** Forgets the commits not asked for. */
  forget(): void {
    this.#commits.clear();
  }

  async close(): Promise<void> {
    await this.#watcher.cancel();
  }

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
      const jobId = jobDir.replace(/^.*\//, '');
      this.#record(jobId, jobDir, Number(latest.kv.value.toString()), events);
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

  #record(jobId: string, jobDir: string, checkpointId: number, events: IWatchResponse['events']): void {
    const parts = this.#parts.get(jobDir) ?? [];
    this.#parts.delete(jobDir);
    const puts = events.filter((e) => e.type === 'Put').map((e) => ({ key: e.kv.key.toString(), value: e.kv.value }));
    const bytes = (list: ReadonlyArray<{ key: string; value: Buffer }>): number =>
      list.reduce((sum, p) => sum + Buffer.byteLength(p.key) + p.value.length, 0);
    const commit: ScaleCommit = {
      jobId,
      checkpointId,
      parts,
      puts,
      deletes: events.filter((e) => e.type === 'Delete').map((e) => e.kv.key.toString()),
      partBytes: bytes(parts),
      putBytes: bytes(puts),
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

/** Where a replay writes: keys under `from` (the coordinator's job directory) go under `to`, of the same length. */
export interface ReplayTarget {
  from: string;
  to: string;
}

/** Replays captured commits into other job directories, as the store would commit them. */
export class ScaleCommitReplay {
  readonly #client: Etcd3;
  readonly #leader: { key: string; createRevision: string };
  /** The parts each target directory holds from its previous round, deleted after the next. */
  readonly #previousParts = new Map<string, string[]>();

  private constructor(client: Etcd3, leader: { key: string; createRevision: string }) {
    this.#client = client;
    this.#leader = leader;
  }

  /** Writes a leadership key under `prefix` (a floor's own) that every replay compares. */
  static async start(client: Etcd3, prefix: string): Promise<ScaleCommitReplay> {
    const key = `${prefix}election/floor`;
    await client.put(key).value('floor');
    const kv: IKeyValue | undefined = (await client.get(key).exec()).kvs[0];
    if (kv === undefined) throw new Error(`${key} was not written`);
    return new ScaleCommitReplay(client, { key, createRevision: kv.create_revision });
  }

  /** Writes a target directory's epoch and a `latest` of 0, which its replays compare. */
  async prepare(toDir: string, epoch: number): Promise<void> {
    await this.#client.put(`${toDir}latest`).value(pad(0));
    await this.#client.put(`${toDir}epoch`).value(pad(epoch));
  }

  /**
   * Writes `commit`'s parts, then one transaction of its puts (with `latest`
   * set to `round`) and its deletes, under `target`; resolves with the ms
   * the parts took. The target's parts of its previous round are deleted
   * afterwards, outside the caller's timing if it awaits `sweep` apart.
   */
  async replay(commit: ScaleCommit, target: ReplayTarget, round: number, epoch: number): Promise<number> {
    const map = (key: string): string => {
      if (!key.startsWith(target.from)) throw new Error(`${key} is not under ${target.from}`);
      return target.to + key.slice(target.from.length);
    };
    const started = performance.now();
    const partKeys = commit.parts.map((p) => map(p.key));
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < commit.parts.length) {
        const i = next++;
        await this.#client.put(partKeys[i]!).value(commit.parts[i]!.value);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, commit.parts.length) }, lane));
    const partsMs = performance.now() - started;
    const dir = target.to;
    const latest = `${dir}latest`;
    const deleted = new Set(commit.deletes.map((key) => map(key).replace(/[^/]*$/, '')));
    let txn = this.#client
      .if(latest, 'Value', '<', pad(round))
      .and(`${dir}epoch`, 'Value', '==', pad(epoch))
      .and(this.#leader.key, 'Create', '==', this.#leader.createRevision);
    for (const key of partKeys) txn = txn.and(key, 'Version', '>', 0);
    const response = await txn
      .then(
        ...commit.puts.map((p) =>
          this.#client.put(map(p.key)).value(map(p.key) === latest ? Buffer.from(pad(round)) : p.value),
        ),
        ...[...deleted].map((prefix) => this.#client.delete().prefix(prefix)),
      )
      .else(this.#client.get(latest), this.#client.get(`${dir}epoch`), this.#client.get(this.#leader.key))
      .commit();
    if (!response.succeeded) throw new Error(`the floor's replay of round ${round} into ${dir} was refused`);
    this.#pendingSweep.set(dir, partKeys);
    return partsMs;
  }

  readonly #pendingSweep = new Map<string, string[]>();

  /** Deletes the parts that `dir`'s replay before the last one wrote (the last one's root names the newest). */
  async sweep(dir: string): Promise<void> {
    const previous = this.#previousParts.get(dir) ?? [];
    const current = this.#pendingSweep.get(dir) ?? [];
    this.#pendingSweep.delete(dir);
    this.#previousParts.set(dir, current);
    const keep = new Set(current);
    for (const key of previous) if (!keep.has(key)) await this.#client.delete().key(key);
  }
}
