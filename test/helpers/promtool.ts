/** Running Prometheus's `promtool` in tests. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs `promtool` with `args` (in `cwd`, if given); its output, and whether it succeeded, never a throw. */
export function promtool(args: readonly string[], cwd?: string): Promise<{ ok: boolean; out: string }> {
  return run('promtool', [...args], cwd === undefined ? {} : { cwd }).then(
    (r) => ({ ok: true, out: r.stdout + r.stderr }),
    (err: { stdout?: string; stderr?: string; message: string }) => ({
      ok: false,
      out: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}`,
    }),
  );
}
