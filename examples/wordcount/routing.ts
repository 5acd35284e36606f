/**
 * Watches the records the split tasks send to the count tasks and checks
 * their partitioning: every record carries its word as key
 * (`ckpt-key` = encodeURIComponent(word)) and goes to the count task that
 * owns the word's key group. When the splits run in another language than
 * the counts, this is the check that both agree on the partitioning, so
 * that a count task's keyed state never sees a word it does not own.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  BARRIER_HEADER,
  DEFAULT_SUBJECT_PREFIX,
  KEY_HEADER,
  controlPrefix,
  edgeSubject,
  partitionOf,
} from '../../src/internal.js';

/** What the watch saw. */
export interface RoutingReport {
  /** Records seen on the split-count edges. */
  records: number;
  /** Misrouted or mislabelled records, at most a few. */
  problems: string[];
}

/** Watches the edges from `splits` to `counts` of job `jobId` until `stop`. */
export class RoutingWatch {
  readonly #subs: Subscription[] = [];
  readonly #counts: readonly string[];
  #records = 0;
  readonly #problems: string[] = [];
  #wrong = 0;

  constructor(nc: NatsConnection, jobId: string, splits: readonly string[], counts: readonly string[]) {
    // The order a producer partitions over: its downstream tasks, sorted.
    this.#counts = [...counts].sort();
    const prefix = controlPrefix(DEFAULT_SUBJECT_PREFIX, jobId);
    for (const from of splits) {
      for (const to of counts) {
        this.#subs.push(nc.subscribe(edgeSubject(prefix, from, to), { callback: (_, m) => this.#check(from, to, m) }));
      }
    }
  }

  #check(from: string, to: string, m: Msg): void {
    if (m.headers?.has(BARRIER_HEADER) === true) return;
    this.#records += 1;
    const word = m.string();
    const raw = m.headers?.get(KEY_HEADER) ?? '';
    const owner = this.#counts[partitionOf(word, this.#counts.length)];
    let problem: string | undefined;
    if (raw !== encodeURIComponent(word)) problem = `key header "${raw}" for the word "${word}"`;
    else if (owner !== to) problem = `"${word}" went to ${to}, its key group is ${owner}'s`;
    if (problem === undefined) return;
    this.#wrong += 1;
    if (this.#problems.length < 5) this.#problems.push(`${from} -> ${to}: ${problem}`);
  }

  /** Stops watching and reports. */
  stop(): RoutingReport {
    for (const s of this.#subs) s.unsubscribe();
    const problems = [...this.#problems];
    if (this.#wrong > problems.length) problems.push(`... ${this.#wrong} misrouted records in all`);
    if (this.#records === 0) problems.push('no record seen on the split-count edges');
    return { records: this.#records, problems };
  }
}
