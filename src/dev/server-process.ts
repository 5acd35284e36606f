/**
 * One local server as a child process: spawn, wait until its health endpoint
 * answers, kill, pause, restart, stop. The etcd and NATS launchers are thin
 * layers over this.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../log/index.js';
import { trackChild, untrackTempDir } from './child-registry.js';
import { httpGet } from './http-get.js';
import { LogTail } from './log-tail.js';

/** How long a server may take to become healthy, by default. */
export const DEFAULT_START_TIMEOUT_MS = 15_000;

/** How often the health endpoint is polled while starting. */
export const DEFAULT_HEALTH_POLL_MS = 50;

/** How many log lines an error message quotes. */
export const DEFAULT_ERROR_LOG_LINES = 40;

/** How many times a launcher picks fresh ports when one it chose was taken meanwhile. */
export const DEFAULT_PORT_ATTEMPTS = 3;

/** Where `setpriv` lives; it makes the kernel kill a child whose parent died. */
const SETPRIV = '/usr/bin/setpriv';

/** Signals that pause or resume a process rather than end it. */
const JOB_CONTROL_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGSTOP', 'SIGCONT', 'SIGTSTP']);

/** A server that could not be started; the message ends with its log tail. */
export class ServerStartError extends Error {
  override readonly name = 'ServerStartError';

  constructor(
    /** Which server, e.g. `etcd n1`. */
    readonly server: string,
    reason: string,
    /** The server's captured output, last lines. */
    readonly logTail: string,
    options?: { cause?: unknown },
  ) {
    super(`${server}: ${reason}\n--- ${server} log tail ---\n${logTail || '(no output)'}`, options);
  }

  /** Whether the server failed because one of its ports was taken. */
  get portInUse(): boolean {
    return /address already in use/i.test(this.logTail);
  }
}

/** What a `ServerProcess` runs and how it knows the server is ready. */
export interface ServerProcessSpec {
  /** Names the server in logs and errors, e.g. `etcd n1`. */
  label: string;
  /** The executable, looked up in `PATH`. */
  command: string;
  args: readonly string[];
  /** Polled with GET until `isHealthy` accepts the answer. */
  healthUrl: string;
  isHealthy: (status: number, body: string) => boolean;
  /** The server's data directory. */
  dataDir: string;
  /** Whether `stop()` removes `dataDir` (true when the launcher created it). */
  ownsDataDir: boolean;
  /** Default: `DEFAULT_START_TIMEOUT_MS`. */
  startTimeoutMs?: number;
  /** Extra environment variables for the server. */
  env?: Readonly<Record<string, string>>;
  logger: Logger;
}

/** The lifecycle every local server offers. */
export interface ManagedServer {
  /** The data directory; it survives `kill` and `restart`. */
  readonly dataDir: string;
  /** The pid of the current process (changes on restart); 0 before the first start. */
  readonly pid: number;
  /** Whether the process is alive (a paused process counts as alive). */
  readonly running: boolean;
  /**
   * Sends `signal` (default SIGKILL) and waits until the process has exited;
   * SIGSTOP and SIGCONT return at once. etcd may hang on SIGTERM: prefer SIGKILL.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Freezes the process with SIGSTOP: it keeps its ports but answers nothing. */
  pause(): void;
  /** Thaws a paused process with SIGCONT. */
  resume(): void;
  /** Kills the process if it runs, then starts it again on the same ports and data. */
  restart(signal?: AbortSignal): Promise<void>;
  /** Kills the process, waits for its exit and removes a data directory it created. Idempotent. */
  stop(): Promise<void>;
  /** The captured stdout and stderr, most recent part. */
  log(): string;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** A server child process with the `ManagedServer` lifecycle. */
export class ServerProcess implements ManagedServer {
  readonly #spec: ServerProcessSpec;
  readonly #tail = new LogTail();
  #child: ChildProcess | undefined;
  #exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  #alive = false;
  #stopped = false;

  constructor(spec: ServerProcessSpec) {
    this.#spec = spec;
  }

  get dataDir(): string {
    return this.#spec.dataDir;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  get running(): boolean {
    return this.#alive;
  }

  /** Spawns the server and resolves once it is healthy; on failure it is killed and the error carries its log. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#stopped) throw new Error(`${this.#spec.label}: stopped, cannot start again`);
    if (this.#alive) throw new Error(`${this.#spec.label}: already running`);
    this.#spawn();
    await this.#waitReady(signal);
    this.#spec.logger.debug({ server: this.#spec.label, pid: this.pid }, 'server ready');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.#alive) return;
    this.#child?.kill(signal);
    if (JOB_CONTROL_SIGNALS.has(signal)) return;
    // A paused process only acts on SIGKILL; let it see any other signal.
    if (signal !== 'SIGKILL') this.#child?.kill('SIGCONT');
    await this.#exited;
  }

  pause(): void {
    if (this.#alive) this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    if (this.#alive) this.#child?.kill('SIGCONT');
  }

  async restart(signal?: AbortSignal): Promise<void> {
    await this.kill('SIGKILL');
    await this.start(signal);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.kill('SIGKILL');
    if (!this.#spec.ownsDataDir) return;
    await rm(this.#spec.dataDir, { recursive: true, force: true, maxRetries: 3 });
    untrackTempDir(this.#spec.dataDir);
  }

  log(): string {
    return this.#tail.text();
  }

  #spawn(): void {
    const { command, args, env, label } = this.#spec;
    // setpriv execs the server with PR_SET_PDEATHSIG, so it dies with its parent
    // even when the parent is killed by a signal and cannot run its exit hook.
    const argv = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--', command, ...args] : [command, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: withSbin(process.env.PATH), ...env },
    });
    child.stdout?.on('data', (chunk: Buffer) => this.#tail.append(chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.#tail.append(chunk));
    this.#child = child;
    this.#alive = true;
    this.#exited = new Promise((resolve) => {
      // 'error' also reports a signal that could not be sent; only a failed spawn (no pid) ends the process.
      child.on(
        'error',
        (error) => child.pid === undefined && this.#onExit(resolve, { code: null, signal: null, error }),
      );
      child.once('close', (code, sig) => this.#onExit(resolve, { code, signal: sig }));
    });
    trackChild(child);
    this.#spec.logger.debug({ server: label, pid: child.pid, args }, 'server spawned');
  }

  #onExit(resolve: (info: ExitInfo) => void, info: ExitInfo): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#spec.logger.debug({ server: this.#spec.label, ...info }, 'server exited');
    resolve(info);
  }

  async #waitReady(signal?: AbortSignal): Promise<void> {
    const timeoutMs = this.#spec.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const stopPolling = new AbortController();
    const signals = [stopPolling.signal, AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
    const polling = pollHealth(this.#spec, AbortSignal.any(signals)).then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    const outcome = await Promise.race([polling, this.#exited.then((exit) => ({ exit }))]);
    stopPolling.abort();
    if (outcome === undefined) return;
    if ('exit' in outcome) {
      throw this.#startError(`exited before it was ready (${describeExit(outcome.exit)})`, outcome.exit.error);
    }
    await this.kill('SIGKILL');
    if (signal?.aborted) throw this.#startError('start aborted', signal.reason);
    throw this.#startError(`not healthy after ${timeoutMs} ms`, outcome.error);
  }

  #startError(reason: string, cause?: unknown): ServerStartError {
    const tail = this.#tail.lastLines(DEFAULT_ERROR_LOG_LINES);
    return new ServerStartError(this.#spec.label, reason, tail, cause === undefined ? undefined : { cause });
  }
}

/** Polls the health endpoint until it reports healthy; rejects when `signal` aborts. */
async function pollHealth(spec: ServerProcessSpec, signal: AbortSignal): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    const answer = await httpGet(spec.healthUrl, signal).catch(() => undefined);
    if (answer && spec.isHealthy(answer.status, answer.body)) return;
    await delay(DEFAULT_HEALTH_POLL_MS, undefined, { signal });
  }
}

/** Debian installs nats-server in /usr/sbin, which is not on a normal user's PATH. */
function withSbin(path = ''): string {
  return [path, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':');
}

function describeExit(exit: ExitInfo): string {
  if (exit.error) return exit.error.message;
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * Whether a failed start is worth another try on fresh ports: only when the
 * launcher chose the ports itself and one of them was taken before the bind.
 */
export function retryOnFreshPorts(error: unknown, fixedPorts: boolean, attempt: number): boolean {
  return !fixedPorts && attempt < DEFAULT_PORT_ATTEMPTS && error instanceof ServerStartError && error.portInUse;
}
