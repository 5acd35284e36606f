/**
 * Everything the launchers leave on the machine (child processes and temporary
 * data directories) is registered here, so that a parent that exits, even
 * through an uncaught exception or `process.exit()`, kills and removes it.
 * A parent killed by a signal cannot run this hook; the launchers cover that
 * case by asking the kernel to kill each child when its parent dies.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hookInstalled = false;

/** Kills `child` with SIGKILL when this process exits, unless it ended before. */
export function trackChild(child: ChildProcess): void {
  installExitHook();
  children.add(child);
  child.once('close', () => children.delete(child));
}

/** Removes `dir` when this process exits, unless `untrackTempDir` ran before. */
export function trackTempDir(dir: string): void {
  installExitHook();
  tempDirs.add(dir);
}

/** Forgets a directory that its owner removed. */
export function untrackTempDir(dir: string): void {
  tempDirs.delete(dir);
}

/**
 * Synchronously kills every server child still running and removes every
 * temporary data directory. Safe to call more than once; the CLI calls it from
 * its signal handlers.
 */
export function killLocalServersSync(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone: nothing to clean up.
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  tempDirs.clear();
}

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', killLocalServersSync);
}
