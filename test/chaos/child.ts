/**
 * A Node child process of the fault suite (a coordinator or a worker) that
 * can be SIGKILLed, SIGSTOPped, continued and started again with the same
 * arguments. Each process dies with its parent, also when the parent is
 * killed, and every line it writes to stderr reaches a callback.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** How many stderr lines a child keeps for error messages. */
const TAIL_LINES = 200;

/** `setpriv --pdeathsig` makes the kernel kill a child whose parent died. */
const SETPRIV = '/usr/bin/setpriv';

/** Every child started and not yet exited, killed when this process exits. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** What to run and where its output goes. */
export interface ChildSpec {
  /** Names the process in messages, e.g. `coordinator-0`. */
  label: string;
  /** Arguments after `node --import tsx` (or after `nodeArgs`); called on every start. */
  args: () => string[];
  /** Node's own arguments, before `args`. Default `['--import=tsx']`, to run TypeScript. */
  nodeArgs?: readonly string[];
  /** Receives every stderr line. Default: none. */
  onLine?: (line: string) => void;
  /** Every stderr line is also appended to this file, across restarts. Default: none. */
  logFile?: string;
}

/** A restartable child process. */
export class ManagedChild {
  readonly spec: ChildSpec;
  readonly #tail: string[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #paused = false;
  #logFile: WriteStream | undefined;
  /** How many times the process was started. */
  starts = 0;

  constructor(spec: ChildSpec) {
    this.spec = spec;
  }

  /** Whether the process runs (a paused one counts). */
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  get paused(): boolean {
    return this.#paused && this.running;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  /** The last lines it wrote to stderr. */
  tail(lines = 20): string {
    return this.#tail.slice(-lines).join('\n');
  }

  /** Spawns the process; it must not be running. */
  start(): void {
    if (this.running) throw new Error(`${this.spec.label} is already running`);
    installExitHook();
    const args = [...(this.spec.nodeArgs ?? ['--import=tsx']), ...this.spec.args()];
    const argv = existsSync(SETPRIV)
      ? [SETPRIV, '--pdeathsig', 'KILL', '--', process.execPath, ...args]
      : [process.execPath, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#paused = false;
    this.starts += 1;
    live.add(child);
    this.#exited = new Promise((resolve) => {
      child.once('close', () => {
        live.delete(child);
        resolve();
      });
      child.once('error', () => {
        if (child.pid === undefined) {
          live.delete(child);
          resolve();
        }
      });
    });
    const lines = createInterface({ input: child.stderr });
    if (this.spec.logFile !== undefined) this.#logFile ??= createWriteStream(this.spec.logFile, { flags: 'a' });
    lines.on('line', (line) => {
      this.#logFile?.write(line + '\n');
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
      this.spec.onLine?.(line);
    });
  }

  /** SIGKILL, and resolves once the process is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  /** SIGSTOP: the process keeps its sockets but does nothing. */
  pause(): void {
    if (!this.running) return;
    this.#child?.kill('SIGSTOP');
    this.#paused = true;
  }

  /** SIGCONT after `pause`. */
  resume(): void {
    if (!this.running) return;
    this.#child?.kill('SIGCONT');
    this.#paused = false;
  }

  /**
   * SIGTERM (after a SIGCONT), then SIGKILL if it has not exited within
   * `graceMs`; closes the log file.
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.running) {
      this.#child?.kill('SIGCONT');
      this.#child?.kill('SIGTERM');
      const timer = setTimeout(() => this.#child?.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
    const file = this.#logFile;
    this.#logFile = undefined;
    if (file !== undefined) await new Promise<void>((resolve) => file.end(resolve));
  }
}

/** SIGKILLs every child still running; for the exit hook and for aborted runs. */
export function killChildrenSync(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', killChildrenSync);
}
