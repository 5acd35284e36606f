/**
 * The watch of every job when the jobs form several groups: one part per
 * group, each watching that group's leader (this process's coordinator
 * while it leads the group, else the leader over gRPC), merged into one
 * stream of events.
 *
 * A group's leader may change while the stream is open. The part of that
 * group ends (the old leader's coordinator stopped, or its stream ended)
 * or its source changes (the leader known for the group is another one);
 * then the part is opened again against the group's leader of the moment,
 * with backoff while none is known or it does not answer, and the stream
 * goes on. As with a single leader, a watch carries events as they happen,
 * not a history: the group's events between the old leader's end and the
 * new part's start are not streamed (the new leader aborts what the old
 * one left pending, and those aborts are streamed once the part is live),
 * and no event is streamed twice, as each part is stopped before the next
 * one opens.
 */
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { QuerySource } from './dashboard-sources.js';

/** Pauses before a group's part is opened again: from 100 ms, doubling up to 1 s. */
const REOPEN_BACKOFF: BackoffConfig = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.2 };
/** How often each part checks that its source is still its group's (a leader that changed without ending it). */
export const SOURCE_CHECK_MS = 1000;

/** What a `GroupWatch` needs. */
export interface GroupWatchOptions {
  /** How many groups there are. */
  groups: number;
  /** Where group `group`'s events come from now; throws while the group has no reachable leader. */
  source(group: number): QuerySource;
  /** Every event of every group. */
  listener(summary: CheckpointSummary__Output): void;
  /** Once, when every group's part was live at least once. */
  live?: () => void;
  /**
   * Calls its argument with a group whose leader may have changed (this
   * process started or stopped leading it), until the returned function is
   * called: that group's part moves at once instead of at the next check.
   */
  changes?: (changed: (group: number) => void) => () => void;
}

/** One group's part of the watch. */
interface Part {
  source: QuerySource | undefined;
  stop: () => void;
  live: boolean;
  attempt: number;
  retry: NodeJS.Timeout | undefined;
}

/** The merged watch of every group, open until `stop()`. */
export class GroupWatch {
  readonly #o: GroupWatchOptions;
  readonly #parts: Part[];
  readonly #check: NodeJS.Timeout;
  #unsubscribe: () => void = () => {};
  #open = true;
  #wasLive = false;

  /**
   * Opens every group's part. Throws (and opens nothing) when a group's
   * source throws now, e.g. UNAVAILABLE while no leader of it is known:
   * the caller answers with that error, as a single leader's watch does.
   */
  constructor(options: GroupWatchOptions) {
    this.#o = options;
    const sources = Array.from({ length: options.groups }, (_, g) => options.source(g));
    this.#parts = sources.map(() => ({ source: undefined, stop: () => {}, live: false, attempt: 0, retry: undefined }));
    try {
      for (const [g, source] of sources.entries()) this.#start(g, source);
    } catch (err) {
      this.stop();
      throw err;
    }
    this.#check = setInterval(() => this.#checkSources(), SOURCE_CHECK_MS);
    this.#check.unref();
    this.#unsubscribe = options.changes?.((g) => this.#checkSource(g)) ?? (() => {});
  }

  /** Stops every part. */
  stop(): void {
    this.#open = false;
    clearInterval(this.#check);
    this.#unsubscribe();
    for (const part of this.#parts) {
      clearTimeout(part.retry);
      part.stop();
      part.stop = () => {};
    }
  }

  /** Opens group `g`'s part on `source`; throws when the source refuses at once. */
  #start(g: number, source: QuerySource): void {
    const part = this.#part(g);
    part.source = source;
    part.live = false;
    let current = true;
    const stop = source.watch(
      undefined,
      (s) => current && this.#open && this.#o.listener(s),
      () => {
        if (!current) return;
        current = false;
        this.#reopenLater(g);
      },
      () => current && this.#partLive(g),
    );
    part.stop = () => {
      current = false;
      stop();
    };
  }

  #partLive(g: number): void {
    const part = this.#part(g);
    part.live = true;
    part.attempt = 0;
    if (this.#wasLive || !this.#parts.every((p) => p.live)) return;
    this.#wasLive = true;
    this.#o.live?.();
  }

  /** Group `g`'s part ended or cannot open now: open it again after a pause. */
  #reopenLater(g: number): void {
    const part = this.#part(g);
    part.stop();
    part.stop = () => {};
    part.source = undefined;
    part.live = false;
    if (!this.#open || part.retry !== undefined) return;
    part.retry = setTimeout(
      () => {
        part.retry = undefined;
        this.#reopen(g);
      },
      backoffDelayMs(REOPEN_BACKOFF, part.attempt),
    );
    part.attempt += 1;
  }

  #reopen(g: number): void {
    if (!this.#open) return;
    try {
      this.#start(g, this.#o.source(g));
    } catch {
      // No leader of the group is known, or it refused: again after a pause.
      this.#reopenLater(g);
    }
  }

  /** Moves each part whose group's source changed to the new one. */
  #checkSources(): void {
    for (let g = 0; g < this.#parts.length; g++) this.#checkSource(g);
  }

  /** Moves group `g`'s part to its source of now when that changed (a new leader, this process took over). */
  #checkSource(g: number): void {
    const part = this.#part(g);
    if (!this.#open) return;
    if (part.source === undefined) {
      // Waiting to open again: the group has news, so now.
      if (part.retry === undefined) return;
      clearTimeout(part.retry);
      part.retry = undefined;
      part.attempt = 0;
      this.#reopen(g);
      return;
    }
    let now: QuerySource | undefined;
    try {
      now = this.#o.source(g);
    } catch {
      now = undefined;
    }
    if (now === part.source) return;
    part.attempt = 0;
    if (now === undefined) this.#reopenLater(g);
    else {
      part.stop();
      this.#startOrRetry(g, now);
    }
  }

  #startOrRetry(g: number, source: QuerySource): void {
    try {
      this.#start(g, source);
    } catch {
      this.#reopenLater(g);
    }
  }

  #part(g: number): Part {
    const part = this.#parts[g];
    if (part === undefined) throw new RangeError(`no job group ${g} in this watch`);
    return part;
  }
}
