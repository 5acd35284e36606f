/** Running a command-line tool in tests: its output, and whether it succeeded, never a throw. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What a tool run ended with; `missing` when the tool is not installed. */
export interface ToolResult {
  ok: boolean;
  missing: boolean;
  stdout: string;
  /** stdout, stderr and the error message together. */
  out: string;
}

/** Options of `runTool`. */
export interface RunToolOptions {
  cwd?: string;
  /** The environment; the test process's when absent. */
  env?: NodeJS.ProcessEnv;
}

/** Runs `command` with `args`. */
export function runTool(command: string, args: readonly string[], options: RunToolOptions = {}): Promise<ToolResult> {
  return run(command, [...args], { ...options, maxBuffer: 64 * 1024 * 1024 }).then(
    (r) => ({ ok: true, missing: false, stdout: r.stdout, out: r.stdout + r.stderr }),
    (err: { code?: unknown; stdout?: string; stderr?: string; message: string }) => ({
      ok: false,
      missing: err.code === 'ENOENT',
      stdout: err.stdout ?? '',
      out: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}`,
    }),
  );
}
