/**
 * A `ckpt coordinator` in a child process, for the fuzz suite: a request
 * that ends the coordinator shows up as the child's exit, with its stderr,
 * instead of taking the test runner down with it. The child dies with its
 * parent (`setpriv --pdeathsig`, and an exit hook).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../../src/dev/index.js';
import { eventually } from '../helpers/wait.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'src', 'cli', 'main.ts');
const SETPRIV = '/usr/bin/setpriv';

/** How long a coordinator child may take to start and lead. */
export const DEFAULT_COORDINATOR_START_MS = 30_000;

/** Stderr lines a child keeps. */
const KEPT_LINES = 2_000;

/** Every child not yet exited, killed when the test process exits. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** What a coordinator child is started with. */
export interface CoordinatorProcessOptions {
  etcdUrl: string;
  natsUrl: string;
  etcdPrefix: string;
  subjectPrefix: string;
  authToken: string;
  /** Further `ckpt coordinator` flags, e.g. `['--heartbeat-timeout-ms', '5000']`. Default: none. */
  extraArgs?: readonly string[];
  /** Extra environment (options the CLI may not have as flags yet are read from `CKPT_*`). Default: none. */
  env?: Readonly<Record<string, string>>;
}

/** How a child ended. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running coordinator child. */
export class CoordinatorProcess {
  readonly address: string;
  readonly options: CoordinatorProcessOptions;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  #dropped = 0;
  #exit: ChildExit | undefined;

  private constructor(options: CoordinatorProcessOptions, address: string, child: ChildProcess) {
    this.options = options;
    this.address = address;
    this.#child = child;
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        live.delete(child);
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      this.#lines.push(line);
      if (this.#lines.length > KEPT_LINES) {
        this.#lines.shift();
        this.#dropped += 1;
      }
    });
  }

  /** Starts a coordinator on a free port and resolves once it leads and serves. */
  static async start(options: CoordinatorProcessOptions): Promise<CoordinatorProcess> {
    installExitHook();
    const address = `127.0.0.1:${await freePort()}`;
    const args = [
      '--import=tsx',
      CLI,
      'coordinator',
      ...['--listen', address, '--etcd', options.etcdUrl, '--nats', options.natsUrl],
      ...['--etcd-prefix', options.etcdPrefix, '--subject-prefix', options.subjectPrefix],
      ...['--auth-token', options.authToken, '--log-level', 'warn'],
      ...(options.extraArgs ?? []),
    ];
    const argv = existsSync(SETPRIV)
      ? [SETPRIV, '--pdeathsig', 'KILL', '--', process.execPath, ...args]
      : [process.execPath, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    live.add(child);
    const proc = new CoordinatorProcess(options, address, child);
    try {
      await proc.#whenServing();
    } catch (err) {
      await proc.stop();
      throw new Error(`coordinator did not start: ${String(err)}\n${proc.stderr(40)}`, { cause: err });
    }
    return proc;
  }

  /** True until the process exits. */
  get alive(): boolean {
    return this.#exit === undefined;
  }

  /** How it exited; undefined while it runs. */
  get exit(): ChildExit | undefined {
    return this.#exit;
  }

  /** Stderr lines written so far (the oldest are dropped past a few thousand). */
  get lineCount(): number {
    return this.#dropped + this.#lines.length;
  }

  /** Stderr lines from line number `from` on (see `lineCount`). */
  linesSince(from: number): string[] {
    return this.#lines.slice(Math.max(0, from - this.#dropped));
  }

  /** The last `n` stderr lines, for messages. */
  stderr(n = 30): string {
    return this.#lines.slice(-n).join('\n');
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.alive) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Resolves once the ckpt services report SERVING (this process leads); throws if the child exits first. */
  async #whenServing(): Promise<void> {
    const client = new grpc.Client(this.address, grpc.credentials.createInsecure());
    try {
      await eventually(
        async () => {
          if (!this.alive) throw new Error(`exited with ${JSON.stringify(this.#exit)}`);
          return (await healthStatus(client, 'ckpt.v1.Coordinator')) === 'SERVING';
        },
        { timeoutMs: DEFAULT_COORDINATOR_START_MS, pollMs: 100, what: 'the coordinator child to lead' },
      );
    } finally {
      client.close();
    }
  }
}

const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
const HEALTH_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/**
 * The standard health service's status of `service` (it needs no token):
 * a HealthCheckRequest is field 1, the service name; the response is field 1,
 * the status enum.
 */
export function healthStatus(client: grpc.Client, service: string, deadlineMs = 2_000): Promise<string> {
  const name = Buffer.from(service);
  const request = Buffer.concat([Buffer.from([0x0a, name.length]), name]);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      HEALTH_CHECK,
      (b: Buffer) => b,
      (b: Buffer) => b,
      request,
      { deadline: Date.now() + deadlineMs },
      (err, response) => {
        if (err) return reject(err);
        const value = response !== undefined && response[0] === 0x08 ? (response[1] ?? 0) : 0;
        resolve(HEALTH_STATUS[value] ?? `status ${value}`);
      },
    );
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}
