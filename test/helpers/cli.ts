/**
 * Running the `ckpt` command line from tests as a user does: one command to
 * its end, or a long-running one whose output is collected as it comes; what
 * a refused command must look like; and a job with checkpoints to run
 * commands against.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import type { SimulatedWorker } from '../sim/index.js';
import { fanInSpec, startTestCoordinator, type TestCoordinator } from './coordinator.js';
import type { TestServers } from './servers.js';

const run = promisify(execFile);

/** How the tests start the CLI: from the sources, through tsx. */
export const CLI = ['--import=tsx', 'src/cli/main.ts'];

/** What one command printed, and its exit code. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** How long one command may take: far more than it needs, also on a loaded machine. */
const CLI_TIMEOUT_MS = 60_000;

/** Runs `ckpt --address <address> <args…>` to its end (at most `CLI_TIMEOUT_MS`). */
export async function ckpt(address: string, ...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run('node', [...CLI, '--address', address, ...args], {
      timeout: CLI_TIMEOUT_MS,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; signal?: string; stdout?: string; stderr?: string };
    const killed = e.signal === undefined || e.signal === null ? '' : `(ended by ${e.signal})`;
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: (e.stderr ?? '') + killed };
  }
}

/** A CLI process left running; killed when the test ends if it has not exited. */
export interface RunningCli {
  child: ChildProcess;
  /** Everything printed so far. */
  out(): string;
  err(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts `ckpt <args…>` and collects what it prints. */
export function spawnCli(t: ExecutionContext, ...args: string[]): RunningCli {
  const child = spawn('node', [...CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, out: () => out, err: () => err, exited };
}

/** Asserts that a command failed as a user should see it: a non-zero exit, `message` on stderr, no stack trace. */
export function assertRefused(t: ExecutionContext, res: CliResult, message: RegExp): void {
  t.not(res.code, 0, `exit status (stdout: ${res.stdout})`);
  t.regex(res.stderr, message);
  t.notRegex(res.stderr, /^\s+at /m, 'a clear message, no stack trace');
}

/** A job and the checkpoints it has taken, for commands to show. */
export interface CheckpointedJob {
  c: TestCoordinator;
  /** The worker running both tasks of the job. */
  w: SimulatedWorker;
  /** Ids of the completed checkpoints, oldest first. */
  completed: number[];
  /** Id of the checkpoint that a task declined, between the two completed ones. */
  declined: number;
}

/** A running job `orders` of a source and a sink on one simulated worker: a checkpoint completed, one declined, one completed. */
export async function checkpointedJob(t: ExecutionContext, servers: TestServers): Promise<CheckpointedJob> {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('orders', 1, 1, { retained: 5, tolerableFailures: -1 });
  await c.client.submitJob({ spec });
  const w = await c.worker({ jobId: 'orders', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec });
  await c.started('orders');
  const trigger = async () =>
    (await c.client.triggerCheckpoint({ jobId: 'orders', wait: true }, { deadlineMs: 10_000 })).checkpoint;
  const completed = [(await trigger())?.checkpointId ?? 0];
  w.setBehaviour('sink-0', 'decline');
  const declined = (await trigger())?.checkpointId ?? 0;
  w.setBehaviour('sink-0', 'ack');
  completed.push((await trigger())?.checkpointId ?? 0);
  return { c, w, completed, declined };
}

/**
 * The rows of an aligned table as the CLI prints it, each cell cut where its
 * header's column starts (columns are two spaces apart; a header may hold
 * single spaces), so a misaligned row shows as wrong cells.
 */
export function tableRows(text: string): Record<string, string>[] {
  const [header = '', ...rows] = text.trimEnd().split('\n');
  const columns = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], start: m.index }));
  return rows.map((row) =>
    Object.fromEntries(
      columns.map((col, i) => [col.name, row.slice(col.start, columns[i + 1]?.start ?? row.length).trim()]),
    ),
  );
}
