/**
 * Several `ckpt coordinator` child processes on one etcd prefix and subject
 * prefix, as the fail-over scenario runs them: each runs the compiled
 * JavaScript of dist/ under plain `node` on a fixed address (a restart
 * listens where the killed process did, as under a supervisor), and every
 * JSON line it logs is kept with the process it came from.
 */
import { join } from 'node:path';
import { freePort } from '../../src/dev/index.js';
import type { ManagedChild } from '../../test/chaos/child.js';
import { requireCompiled } from './compiled-child.js';
import { coordinatorChild, LogEntries, parseLogLine, type CoordinatorLogEntry } from './coordinator-log-child.js';
import type { ScenarioContext } from './row.js';

/** One JSON log line of a coordinator, with the fields the scenario reads. */
export interface FailoverLogEntry extends CoordinatorLogEntry {
  /** Index of the coordinator process that logged it. */
  from: number;
}

/** A matcher of log entries. */
export type EntryMatch = (e: FailoverLogEntry) => boolean;

/** The coordinator processes of one scenario. */
export class FailoverCluster {
  /** The gRPC address of each coordinator, in order. */
  readonly addresses: readonly string[];
  readonly #log: LogEntries<FailoverLogEntry>;
  readonly #children: ManagedChild[];

  private constructor(ctx: ScenarioContext, addresses: readonly string[], extraArgs: readonly string[]) {
    this.addresses = addresses;
    const logDir = process.env.CKPT_BENCH_FAILOVER_LOG_DIR || undefined;
    this.#log = new LogEntries((what, timeoutMs) => {
      const tails = this.#children.map((c) => `${c.spec.label}:\n${c.tail(8)}`).join('\n');
      return `no coordinator logged ${what} within ${timeoutMs} ms:\n${tails}`;
    });
    this.#children = addresses.map((address, i) =>
      coordinatorChild(ctx, {
        label: `coordinator-${i}`,
        address,
        extraArgs,
        onLine: (line) => this.#onLine(i, line),
        ...(logDir === undefined ? {} : { logFile: join(logDir, `coordinator-${i}.log`) }),
      }),
    );
  }

  /** Every log line of every coordinator so far, in arrival order. */
  get entries(): readonly FailoverLogEntry[] {
    return this.#log.entries;
  }

  /**
   * Starts `count` coordinators with `extraArgs`, one after the other, so
   * that the first leads; resolves once it has started its coordinator and
   * the others listen. Rejects, saying to run `make build`, when dist/ is
   * missing or stale.
   */
  static async start(ctx: ScenarioContext, count: number, extraArgs: readonly string[]): Promise<FailoverCluster> {
    await requireCompiled();
    const addresses: string[] = [];
    for (let i = 0; i < count; i++) addresses.push(`127.0.0.1:${await freePort()}`);
    const cluster = new FailoverCluster(ctx, addresses, extraArgs);
    try {
      cluster.#children[0]?.start();
      await cluster.waitFor((e) => e.from === 0 && e.msg === 'coordinator started', START_TIMEOUT_MS, 'a leader');
      for (let i = 1; i < count; i++) await cluster.restart(i, 0);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** SIGKILLs coordinator `index` and resolves once the process is gone. */
  kill(index: number): Promise<void> {
    return this.#child(index).kill();
  }

  /** SIGSTOPs coordinator `index`: it keeps its sockets but does nothing. */
  pause(index: number): void {
    this.#child(index).pause();
  }

  /** SIGCONTs coordinator `index` after `pause`. */
  resume(index: number): void {
    this.#child(index).resume();
  }

  /** Starts coordinator `index` again and resolves once it listens (logged at or after `sinceMs`). */
  async restart(index: number, sinceMs = Date.now()): Promise<void> {
    this.#child(index).start();
    await this.waitFor(
      (e) => e.from === index && e.msg === 'gRPC server listening' && e.time >= sinceMs,
      START_TIMEOUT_MS,
      `coordinator-${index} listening`,
    );
  }

  /** The first entry matching `match`, kept or yet to come; rejects after `timeoutMs`, naming `what`. */
  waitFor(match: EntryMatch, timeoutMs: number, what: string): Promise<FailoverLogEntry> {
    return this.#log.waitFor(match, timeoutMs, what);
  }

  /** Stops every coordinator (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    await Promise.all(this.#children.map((c) => c.stop(STOP_GRACE_MS)));
  }

  #child(index: number): ManagedChild {
    const child = this.#children[index];
    if (child === undefined) throw new Error(`no coordinator ${index}`);
    return child;
  }

  #onLine(from: number, line: string): void {
    const entry = parseLogLine(line);
    if (entry !== undefined) this.#log.add({ ...entry, from });
  }
}

/** How long a coordinator has to start. */
const START_TIMEOUT_MS = 30_000;
/** How long a coordinator has to stop gracefully. */
const STOP_GRACE_MS = 5_000;
