/**
 * A coordinator as users run it, `ckpt coordinator`, in a process of its
 * own so that its CPU is apart from the workers' and the benchmark's, with
 * the V8 flags it is deployed with (`COORDINATOR_NODE_FLAGS`); it
 * logs at info level to a temporary file, removed when it stops. With
 * `CKPT_BENCH_CPU_PROF_DIR` set, it runs with `--cpu-prof` and writes a
 * `.cpuprofile` there when it stops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/dev/index.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.ts');
/** Time the coordinator has to be elected leader. */
const START_TIMEOUT_MS = 30_000;
/** Time a graceful stop may take before the process is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** `setpriv --pdeathsig` makes the kernel kill the coordinator if this process dies. */
const SETPRIV = '/usr/bin/setpriv';
/** Log lines quoted in error messages. */
const TAIL_LINES = 40;
/** How often the log is read while waiting for the election. */
const ELECTION_POLL_MS = 25;

/**
 * The V8 flags of the deployed coordinator (deploy/kubernetes/base/coordinator.yaml's NODE_OPTIONS, less the heap
 * limit): young generation semi-spaces of 32 MiB rather than 16, which make scavenges half as frequent. At 1,000 jobs
 * the coordinator spent about 14 % less CPU per checkpoint with them (2.31 ms rather than 2.68, in one comparison on
 * a loaded machine).
 */
export const COORDINATOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/** Options of `startCoordinatorChild`. */
export interface CoordinatorChildOptions {
  etcd: readonly string[];
  nats: readonly string[];
  /** Used as the etcd prefix (`/<prefix>/`) and the NATS subject prefix. */
  prefix: string;
  /** Extra `ckpt coordinator` flags. Default: none. */
  flags?: readonly string[];
}

/** A running coordinator process. */
export interface CoordinatorChild {
  /** Its gRPC address. */
  readonly address: string;
  /** The CPU profile directory, when profiling. */
  readonly cpuProfileDir: string | undefined;
  /** Its process id, for /proc. */
  readonly pid: number;
  /** Its JSON log, until it stops. */
  readonly logFile: string;
  /** SIGTERM (a graceful stop), SIGKILL after a grace period. */
  stop(): Promise<void>;
}

/** Starts `ckpt coordinator` and resolves once it leads; rejects with its log if it exits first. */
export async function startCoordinatorChild(options: CoordinatorChildOptions): Promise<CoordinatorChild> {
  const address = `127.0.0.1:${await freePort()}`;
  const cpuProfileDir = process.env.CKPT_BENCH_CPU_PROF_DIR || undefined;
  const profile = cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir];
  const nodeFlags = [...COORDINATOR_NODE_FLAGS, ...profile];
  const args = [
    ...nodeFlags,
    '--import=tsx',
    CLI,
    'coordinator',
    ...['--etcd', options.etcd.join(','), '--nats', options.nats.join(',')],
    ...['--listen', address, '--etcd-prefix', `/${options.prefix}/`, '--subject-prefix', options.prefix],
    ...['--log-level', 'info'],
    // Simulated workers acknowledge sim:// state handles.
    ...['--state-uri-schemes', 'file,nats-obj,sim'],
    ...(options.flags ?? []),
  ];
  const argv = existsSync(SETPRIV)
    ? [SETPRIV, '--pdeathsig', 'KILL', '--', process.execPath, ...args]
    : [process.execPath, ...args];
  // The log goes to a file, not a pipe: reading a pipe would wake the benchmark process at every line.
  const logDir = await mkdtemp(join(tmpdir(), 'ckpt-bench-coordinator-'));
  const logFile = join(logDir, 'coordinator.log');
  const log = openSync(logFile, 'w');
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', log] });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const remove = (): Promise<void> => rm(logDir, { recursive: true, force: true });
  try {
    await elected(child, logFile);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    await remove();
    throw err;
  }
  const pid = child.pid ?? 0;
  return { address, cpuProfileDir, pid, logFile, stop: () => stopChild(child, exited).finally(remove) };
}

/** Resolves once the log has the `elected leader` line; rejects with the log's tail if the process exits first. */
async function elected(child: ChildProcess, logFile: string): Promise<void> {
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const log = await readFile(logFile, 'utf8');
    if (log.includes('"elected leader"')) return;
    const tail = log.trimEnd().split('\n').slice(-TAIL_LINES).join('\n');
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`ckpt coordinator exited with ${child.exitCode ?? child.signalCode}:\n${tail}`);
    }
    if (Date.now() > until) throw new Error(`ckpt coordinator not elected leader in time:\n${tail}`);
    await delay(ELECTION_POLL_MS);
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  child.kill('SIGTERM');
  await exited;
  clearTimeout(timer);
}
