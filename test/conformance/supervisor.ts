/**
 * The runner as a supervisor of worker processes: it starts the worker
 * command under test with the contract's environment, appends its output
 * to a log file, and starts it again ~200 ms after it exits, until the
 * scenario stops it. Each process dies with the runner (`setpriv
 * --pdeathsig`), also when the runner is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';

/** How long after an exit the supervisor starts the worker again. */
export const RESTART_DELAY_MS = 200;

/** `setpriv --pdeathsig` makes the kernel kill a child whose parent died. */
const SETPRIV = '/usr/bin/setpriv';

/** Every worker process running, SIGKILLed when the runner exits. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** One exit of a worker process. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  atMs: number;
}

/** What a supervised worker runs. */
export interface SupervisedWorkerSpec {
  /** Names the worker in messages, e.g. `w1`. */
  label: string;
  /** A shell command line (run as `sh -c 'exec <command>'`). */
  command: string;
  /** The directory it runs in. */
  cwd: string;
  /** The contract's environment, added to the runner's own. */
  env: Record<string, string>;
  /** Its stdout and stderr are appended here, across restarts. */
  logFile: string;
}

/** A worker process kept running by the runner. */
export class SupervisedWorker {
  readonly spec: SupervisedWorkerSpec;
  readonly exits: WorkerExit[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: WriteStream;
  #stopped = false;
  #restartTimer: NodeJS.Timeout | undefined;
  /** How many times the process was started. */
  starts = 0;

  constructor(spec: SupervisedWorkerSpec) {
    this.spec = spec;
    this.#log = createWriteStream(spec.logFile, { flags: 'a' });
  }

  /** Whether a process runs now. */
  get running(): boolean {
    const c = this.#child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** Starts the process (and keeps it running). */
  start(): void {
    if (this.#stopped || this.running) return;
    installExitHook();
    const shell = ['/bin/sh', '-c', `exec ${this.spec.command}`];
    const argv = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'KILL', '--', ...shell] : shell;
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.starts += 1;
    this.#line(`--- start ${this.starts} (pid ${child.pid ?? '?'}) ---`);
    child.stdout?.on('data', (chunk: Buffer) => this.#log.write(chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.#log.write(chunk));
    this.#child = child;
    live.add(child);
    this.#exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        live.delete(child);
        this.exits.push({ code, signal, atMs: Date.now() });
        this.#line(`--- exit ${code ?? signal ?? '?'} ---`);
        resolve();
        if (!this.#stopped) this.#restartTimer = setTimeout(() => this.start(), RESTART_DELAY_MS);
      };
      child.once('close', done);
      child.once('error', (err) => {
        this.#line(`--- spawn failed: ${err.message} ---`);
        if (child.pid === undefined) done(null, null);
      });
    });
  }

  /** SIGKILLs the current process; the supervisor starts it again. Resolves once it exited. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  /** Ends supervision: SIGTERM, then SIGKILL after `graceMs`; closes the log. */
  async stop(graceMs = 3000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restartTimer);
    if (this.running) {
      this.#child?.kill('SIGTERM');
      const timer = setTimeout(() => this.#child?.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }

  /** Waits until the process (as it runs now) exits, or `timeoutMs`; true when it exited. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const exited = this.#exited.then(() => true);
    const result = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    return result;
  }

  #line(text: string): void {
    this.#log.write(`${new Date().toISOString()} ${text}\n`);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}
