/**
 * The scale scenario's floor writes of a commit: what the coordinator wrote
 * to etcd for one checkpoint (captured by `commit-capture.ts`, parts
 * included) written again into other job directories, as the store would
 * commit it: the same parts (as many at once as the store writes them),
 * then one transaction of the same keys and values, guarded as the store
 * guards a commit (`replayTransaction`: `latest < id`, `epoch == e`, a
 * leadership key's create revision, and every part existing).
 */
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { pad } from '../../src/store/index.js';
import {
  deletedDirectories,
  replayTransaction,
  writeFloorLeader,
  type CapturedCommit,
  type FloorLeader,
} from './commit-capture.js';

/** How many parts the store writes at once (its default `partConcurrency`). */
export const PART_CONCURRENCY = 4;

/** Where a replay writes: keys under `from` (the coordinator's job directory) go under `to`, of the same length. */
export interface ReplayTarget {
  from: string;
  to: string;
}

/** Replays captured commits into other job directories, as the store would commit them. */
export class ScaleCommitReplay {
  readonly #client: Etcd3;
  readonly #leader: FloorLeader;
  /** The parts each target directory holds from its previous round, deleted after the next. */
  readonly #previousParts = new Map<string, string[]>();
  /** The parts each target directory's last replay wrote. */
  readonly #pendingSweep = new Map<string, string[]>();

  private constructor(client: Etcd3, leader: FloorLeader) {
    this.#client = client;
    this.#leader = leader;
  }

  /** Writes a leadership key under `prefix` (a floor's own) that every replay compares. */
  static async start(client: Etcd3, prefix: string): Promise<ScaleCommitReplay> {
    return new ScaleCommitReplay(client, await writeFloorLeader(client, prefix));
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
  async replay(commit: CapturedCommit, target: ReplayTarget, round: number, epoch: number): Promise<number> {
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
    await replayTransaction(
      this.#client,
      {
        latest,
        below: pad(round),
        epoch: { key: `${dir}epoch`, value: pad(epoch) },
        leader: this.#leader,
        partKeys,
        puts: commit.puts.map((p) => {
          const key = map(p.key);
          return { key, value: key === latest ? Buffer.from(pad(round)) : p.value };
        }),
        deletePrefixes: deletedDirectories(commit.deletes, map),
      },
      `round ${round} into ${dir}`,
    );
    this.#pendingSweep.set(dir, partKeys);
    return partsMs;
  }

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
