/**
 * Running the `ckpt` command line from tests as a user does: one command to
 * its end, or a long-running one whose output is collected as it comes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const run = promisify(execFile);

/** How the tests start the CLI: from the sources, through tsx. */
export const CLI = ['--import=tsx', 'src/cli/main.ts'];

/** What one command printed, and its exit code. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `ckpt --address <address> <args…>` to its end (at most 30 s). */
export async function ckpt(address: string, ...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run('node', [...CLI, '--address', address, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
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
