/**
 * A `ckpt coordinator` child process as the word count and fail-over
 * scenarios run it: the compiled JavaScript of dist/ under plain `node`,
 * on the scenario's etcd prefix and subject prefix, logging JSON lines at
 * info level; and the log entries kept from such processes, which a
 * scenario waits on.
 */
import type { ScenarioContext } from './row.js';
import { ManagedChild } from '../../test/chaos/child.js';
import { COMPILED_CLI, COMPILED_NODE_ARGS } from './compiled-child.js';

/** One JSON log line of a coordinator, with the fields the scenarios read. */
export interface CoordinatorLogEntry {
  /** pino's timestamp: ms since the Unix epoch, on this machine's clock. */
  time: number;
  msg: string;
  jobId?: string;
  epoch?: number;
  workerId?: string;
  /** A completed checkpoint's time from trigger to commit. */
  durationMs?: number;
}

/** How a coordinator child runs. */
export interface CoordinatorChildSpec {
  /** Names the process in errors and its log tail. */
  label: string;
  /** The gRPC address it listens on. */
  address: string;
  /** Flags added to the coordinator's. */
  extraArgs: readonly string[];
  /** Each line the process writes. */
  onLine: (line: string) => void;
  /** Also writes its output there. */
  logFile?: string;
}

/** A coordinator child process (not started yet: `start()` it). */
export function coordinatorChild(ctx: ScenarioContext, spec: CoordinatorChildSpec): ManagedChild {
  return new ManagedChild({
    nodeArgs: COMPILED_NODE_ARGS,
    label: spec.label,
    args: () => [
      COMPILED_CLI,
      'coordinator',
      ...['--etcd', ctx.etcd.join(',')],
      ...['--nats', ctx.nats.join(',')],
      ...['--listen', spec.address],
      ...['--etcd-prefix', `/${ctx.prefix}/`],
      ...['--subject-prefix', ctx.prefix],
      ...['--log-level', 'info'],
      ...spec.extraArgs,
    ],
    onLine: spec.onLine,
    ...(spec.logFile === undefined ? {} : { logFile: spec.logFile }),
  });
}

/** The fields of a pino JSON line the scenarios read; undefined for any other line. */
export function parseLogLine(line: string): CoordinatorLogEntry | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw.time !== 'number' || typeof raw.msg !== 'string') return undefined;
  const entry: CoordinatorLogEntry = { time: raw.time, msg: raw.msg };
  if (typeof raw.jobId === 'string') entry.jobId = raw.jobId;
  if (typeof raw.epoch === 'number') entry.epoch = raw.epoch;
  if (typeof raw.workerId === 'string') entry.workerId = raw.workerId;
  if (typeof raw.durationMs === 'number') entry.durationMs = raw.durationMs;
  return entry;
}

/** Log entries in arrival order, and waits for one to come. */
export class LogEntries<E extends CoordinatorLogEntry> {
  /** Every entry so far, in arrival order. */
  readonly entries: E[] = [];
  readonly #listeners = new Set<() => void>();
  readonly #timedOut: (what: string, timeoutMs: number) => string;

  /** `timedOut` makes the message a wait rejects with when nothing matched (e.g. with the processes' log tails). */
  constructor(timedOut: (what: string, timeoutMs: number) => string) {
    this.#timedOut = timedOut;
  }

  /** Keeps `entry` and wakes the waits. */
  add(entry: E): void {
    this.entries.push(entry);
    for (const listener of [...this.#listeners]) listener();
  }

  /** The first entry matching `match`, kept or yet to come; rejects after `timeoutMs`, naming `what`. */
  waitFor(match: (e: E) => boolean, timeoutMs: number, what: string): Promise<E> {
    const found = this.entries.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        const entry = this.entries.find(match);
        if (entry === undefined) return;
        done();
        resolve(entry);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(this.#timedOut(what, timeoutMs)));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      this.#listeners.add(listener);
    });
  }
}
