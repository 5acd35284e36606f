/**
 * Who leads the election, as etcd says: the value (an advertised address)
 * of the candidacy key with the lowest create revision. One watch on all
 * candidacy keys; the leader is read again whenever a key is put or deleted
 * and whenever the watch (re)connects, so that nothing missed while etcd was
 * unreachable stays unseen.
 */
import type { Etcd3 } from 'etcd3';
import { backoffDelayMs } from '../core/backoff.js';
import type { Logger } from '../log/index.js';
import { callEtcd, translateEtcdError } from '../store/index.js';
import { ELECTION_RETRY, ElectionWatch } from './election.js';

/** The oldest candidacy as last read: who leads, and what identifies its candidacy. */
export interface LeaderRecord {
  /** The full etcd key of the candidacy. */
  key: string;
  /** Its value: the leader's advertised address. */
  address: string;
  /** Decimal create revision of `key`. */
  createRevision: string;
  /** Decimal id of the lease `key` was put with. */
  lease: string;
}

/** Options of a `LeaderObserver`. */
export interface LeaderObserverOptions {
  /** The election's etcd client; never closed here. */
  client: Etcd3;
  /** Where the candidacy keys live: `candidacyKeyPrefix(prefix)`. */
  keyPrefix: string;
  logger: Logger;
}

/** Follows who leads from `start()` to `stop()`. */
export class LeaderObserver {
  readonly #o: LeaderObserverOptions;
  readonly #timers = new Set<NodeJS.Timeout>();
  #watch: ElectionWatch | undefined;
  #current: LeaderRecord | undefined;
  #reading = false;
  #readAgain = false;
  #failures = 0;
  #stopped = false;

  /** See `LeaderObserverOptions`; nothing happens before `start()`. */
  constructor(options: LeaderObserverOptions) {
    this.#o = options;
  }

  /**
   * The oldest candidacy's value as last read; undefined before the first
   * read, while there is no candidate, and after the watch failed.
   */
  get leader(): string | undefined {
    return this.#current?.address;
  }

  /** The oldest candidacy as last read, with its key, create revision and lease; undefined as for `leader`. */
  get current(): LeaderRecord | undefined {
    return this.#current;
  }

  /** Starts watching and reading. */
  start(): void {
    this.#open();
  }

  /** Stops; waits a bounded time for etcd to confirm the watch's end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await this.#watch?.cancel();
  }

  #open(): void {
    if (this.#stopped) return;
    const watcher = this.#o.client.watch().prefix(this.#o.keyPrefix).watcher();
    const watch = new ElectionWatch(watcher, this.#o.logger);
    this.#watch = watch;
    const read = (): void => void this.#read();
    watcher.on('connected', read);
    watcher.on('put', read);
    watcher.on('delete', read);
    watcher.on('error', (err) => {
      if (this.#watch !== watch) return;
      const error = translateEtcdError(err, { operation: 'watch the election' });
      this.#o.logger.debug({ err: error }, 'election watch failed; watching again');
      this.#watch = undefined;
      this.#current = undefined;
      void watch.cancel();
      this.#later(() => this.#open());
    });
  }

  /** Reads the oldest candidacy; a read asked for while one is under way runs after it. */
  async #read(): Promise<void> {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    try {
      const { client, keyPrefix } = this.#o;
      const oldest = await callEtcd({ operation: 'read who leads' }, () =>
        client.getAll().prefix(keyPrefix).sort('Create', 'Ascend').limit(1).exec(),
      );
      const kv = oldest.kvs[0];
      this.#current =
        kv === undefined
          ? undefined
          : {
              key: kv.key.toString(),
              address: kv.value.toString(),
              createRevision: kv.create_revision,
              lease: kv.lease,
            };
      this.#failures = 0;
    } catch (err) {
      this.#o.logger.debug({ err }, 'who leads not read; trying again');
      this.#later(() => void this.#read());
    } finally {
      this.#reading = false;
      if (this.#readAgain) {
        this.#readAgain = false;
        void this.#read();
      }
    }
  }

  #later(run: () => void): void {
    if (this.#stopped) return;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        run();
      },
      backoffDelayMs(ELECTION_RETRY, this.#failures++),
    );
    this.#timers.add(timer);
  }
}
