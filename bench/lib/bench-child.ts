/**
 * Helper processes of the benchmarks (an echo server, simulated workers),
 * so that their CPU is not the measured process's. The parent forks a
 * TypeScript module under tsx and talks to it over the IPC channel: one
 * request, one reply, matched by id; besides, a child may send notices
 * unasked (`notifyParent`), and the parent may SIGKILL it (`kill`). A
 * child exits when its parent goes away, also when the parent is killed.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** A request to a child: `kind` picks the handler, the rest is its argument. */
export interface ChildRequest {
  kind: string;
  [field: string]: unknown;
}

interface Envelope {
  id: number;
  request: ChildRequest;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/** The child's first message: it listens for requests. */
type Ready = { ready: true };

/** A message the child sends unasked (`notifyParent`). */
type Notice = { notice: unknown };

/** Handlers of a child, by request kind. */
export type ChildHandlers = Record<string, (request: ChildRequest) => Promise<unknown>>;

/** Time a child has to exit after `stop()` before it is killed. */
const STOP_GRACE_MS = 10_000;

/** The parent's handle on a forked child. */
export class BenchChild {
  readonly label: string;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #exited: Promise<void>;
  readonly #ready: Promise<void>;
  #nextId = 1;
  #stderr = '';
  #onNotice: (notice: unknown) => void = () => {};

  constructor(label: string, child: ChildProcess) {
    this.label = label;
    this.#child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
    });
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.#ready = new Promise((resolve, reject) => {
      child.on('message', (message: Reply | Ready | Notice) => {
        if ('ready' in message) resolve();
        else if ('notice' in message) this.#onNotice(message.notice);
        else this.#settle(message);
      });
      void this.#exited.then(() => reject(this.#exitError()));
    });
    // A child that exits before it listens fails the next request, not the process.
    this.#ready.catch(() => undefined);
    void this.#exited.then(() => this.#failAll(this.#exitError()));
  }

  /** The child's process id (undefined if it could not be started). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Sends `request` once the child listens and resolves with the handler's value; rejects with its error. */
  async request<T>(request: ChildRequest): Promise<T> {
    await this.#ready;
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ id, request } satisfies Envelope, (err) => {
        if (err !== null) this.#settle({ id, ok: false, error: err.message });
      });
    });
  }

  /** Calls `listener` with every notice the child sends (`notifyParent`), in order; replaces the one before. */
  onNotice(listener: (notice: unknown) => void): void {
    this.#onNotice = listener;
  }

  /** SIGKILLs the child at once and resolves once it is gone; its pending requests reject. */
  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /** Closes the IPC channel (the child exits), and kills it if it has not after a grace period. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_GRACE_MS);
    if (this.#child.connected) this.#child.disconnect();
    else this.#child.kill('SIGTERM');
    await this.#exited;
    clearTimeout(timer);
  }

  #settle(reply: Reply): void {
    const waiting = this.#waiting.get(reply.id);
    if (waiting === undefined) return;
    this.#waiting.delete(reply.id);
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(new Error(`${this.label}: ${reply.error}`));
  }

  #exitError(): Error {
    return new Error(`${this.label} exited: ${this.#stderr.trim() || 'no output'}`);
  }

  #failAll(error: Error): void {
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }
}

/**
 * Forks `script` (a TypeScript module) under tsx, with `args` and node's
 * own `nodeArgs` (a heap limit, `--expose-gc`); with
 * `CKPT_BENCH_CPU_PROF_DIR` set, it writes a CPU profile into that directory.
 */
export function forkBenchChild(
  label: string,
  script: string,
  args: readonly string[] = [],
  nodeArgs: readonly string[] = [],
): BenchChild {
  const profileDir = process.env.CKPT_BENCH_CPU_PROF_DIR;
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = fork(script, [...args], {
    execArgv: ['--import', 'tsx', ...nodeArgs, ...profile],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  return new BenchChild(label, child);
}

/** In the child: sends `notice` to the parent's `onNotice` listener. */
export function notifyParent(notice: unknown): void {
  process.send?.({ notice } satisfies Notice);
}

/**
 * In the child: answers the parent's requests with `handlers`, and runs
 * `close` then exits once the parent closes the channel or goes away.
 */
export function serveParent(handlers: ChildHandlers, close: () => Promise<void> = async () => {}): void {
  if (process.send === undefined) throw new Error('this module runs as a forked benchmark child');
  const send = process.send.bind(process);
  process.on('message', (envelope: Envelope) => {
    const handler = handlers[envelope.request.kind];
    const run =
      handler === undefined
        ? Promise.reject(new Error(`no handler ${envelope.request.kind}`))
        : handler(envelope.request);
    run.then(
      (value) => send({ id: envelope.id, ok: true, value } satisfies Reply),
      (err: unknown) =>
        send({ id: envelope.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies Reply),
    );
  });
  send({ ready: true } satisfies Ready);
  process.once('disconnect', () => {
    const timer = setTimeout(() => process.exit(1), STOP_GRACE_MS);
    void close().finally(() => {
      clearTimeout(timer);
      process.exit(0);
    });
  });
}
