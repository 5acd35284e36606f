/** Running Prometheus's `promtool` in tests. */
import { runTool } from './run-tool.js';

/** Runs `promtool` with `args` (in `cwd`, if given); its output, and whether it succeeded, never a throw. */
export async function promtool(args: readonly string[], cwd?: string): Promise<{ ok: boolean; out: string }> {
  const { ok, out } = await runTool('promtool', args, cwd === undefined ? {} : { cwd });
  return { ok, out };
}
