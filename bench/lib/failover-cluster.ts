/**
 * Several `ckpt coordinator` child processes on one etcd prefix and subject
 * prefix, as the fail-over scenario runs them: each runs the compiled
 * JavaScript of dist/ under plain `node` on a fixed address (a restart
 * listens where the killed process did, as under a supervisor), and every
 * JSON line it logs is kept with the process it came from.
 */
import { join } from 'node:path';
import { freePort } from '../../src/dev/index.js';
import { ManagedChild } from '../../test/chaos/child.js';
import { COMPILED_CLI, COMPILED_NODE_ARGS, requireCompiled } from './compiled-child.js';
import type { ScenarioContext } from './row.js';

/** One JSON log line of a coordinator, with the fields the scenario reads. */
export interface FailoverLogEntry {
  /** Index of the coordinator process that logged it. */
  from: number;
  /** pino's timestamp: ms since the Unix epoch, on this machine's clock. */
  time: number;
  msg: string;
  jobId?: string;
  workerId?: string;
}

/** A matcher of log entries. */
export type EntryMatch = (e: FailoverLogEntry) => boolean;

/** The coordinator processes of one scenario. */
export class FailoverCluster {
  /** The gRPC address of each coordinator, in order. */
  readonly addresses: readonly string[];
  /** Every log line of every coordinator so far, in arrival order. */
  readonly entries: FailoverLogEntry[] = [];
  readonly #children: ManagedChild[];
  readonly #listeners = new Set<() => void>();

  private constructor(ctx: ScenarioContext, addresses: readonly string[], extraArgs: readonly string[]) {
    this.addresses = addresses;
    const logDir = process.env.CKPT_BENCH_FAILOVER_LOG_DIR || undefined;
    this.#children = addresses.map(
      (address, i) =>
        new ManagedChild({
          nodeArgs: COMPILED_NODE_ARGS,
          label: `coordinator-${i}`,
          args: () => [
            COMPILED_CLI,
            'coordinator',
            ...['--etcd', ctx.etcd.join(',')],
            ...['--nats', ctx.nats.join(',')],
            ...['--listen', address],
            ...['--etcd-prefix', `/${ctx.prefix}/`],
            ...['--subject-prefix', ctx.prefix],
            ...['--log-level', 'info'],
            ...extraArgs,
          ],
          onLine: (line) => this.#onLine(i, line),
          ...(logDir === undefined ? {} : { logFile: join(logDir, `coordinator-${i}.log`) }),
        }),
    );
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
        const tails = this.#children.map((c) => `${c.spec.label}:\n${c.tail(8)}`).join('\n');
        reject(new Error(`no coordinator logged ${what} within ${timeoutMs} ms:\n${tails}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      this.#listeners.add(listener);
    });
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
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof raw.time !== 'number' || typeof raw.msg !== 'string') return;
    const entry: FailoverLogEntry = { from, time: raw.time, msg: raw.msg };
    if (typeof raw.jobId === 'string') entry.jobId = raw.jobId;
    if (typeof raw.workerId === 'string') entry.workerId = raw.workerId;
    this.entries.push(entry);
    for (const listener of [...this.#listeners]) listener();
  }
}

/** How long a coordinator has to start. */
const START_TIMEOUT_MS = 30_000;
/** How long a coordinator has to stop gracefully. */
const STOP_GRACE_MS = 5_000;
