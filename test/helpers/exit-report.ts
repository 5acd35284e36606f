/**
 * What keeps a test worker alive after its tests ended.
 *
 * ava runs each test file in a child process and waits for that process to
 * exit on its own; a socket, timer or child process left open keeps it alive
 * until ava's timeout ends the run with "Failed to exit when running <file>".
 * ava loads this module in every test worker (the `require` entry of its
 * configuration in package.json). Once the file's tests and hooks are done, it
 * arms an unref'd timer: if the process still runs when the timer fires, it
 * writes to stderr what keeps it alive (`process.getActiveResourcesInfo()`, then
 * each socket, server and child process with its addresses or pid). The timer
 * never keeps the process alive itself.
 *
 * A worker still alive `DEFAULT_END_AFTER_MS` after its tests ended is ended
 * with exit code 1, which fails the run: ava's own timeout cannot be relied
 * on to end it (a period of `t.timeout()` that covers the moment ava's timer
 * fires disarms that timer for good), and a worker that never exits leaves
 * the whole run hanging. Whenever a worker exits, every process it started
 * and left running is killed (SIGKILL), so that none outlives it holding the
 * output pipes ava reads until they close.
 *
 * With `CKPT_TEST_TRACE_HANDLES=1`, an async hook also records where every
 * timer, socket and child process was created, and the report gives the stack
 * of each one still holding the process. It slows promises down; use it to
 * find a leak, not in every run.
 */
import test, { registerCompletionHandler } from 'ava';
import { createHook } from 'node:async_hooks';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { activeHandles, describeHandle, killDescendantsSync, leakedSockets } from './handles.js';

/** How long after its tests end a worker may take to exit before it is reported. */
export const DEFAULT_EXIT_GRACE_MS = 5_000;

/** When a worker still alive is reported again, in ms after its tests ended. */
export const DEFAULT_REPORT_AT_MS: readonly number[] = [DEFAULT_EXIT_GRACE_MS, 30_000];

/** When a worker still alive is ended, in ms after its tests ended. */
export const DEFAULT_END_AFTER_MS = 60_000;

/** Environment variable that sets the end, in ms (a test of the report itself uses it). */
export const END_AFTER_ENV = 'CKPT_TEST_END_AFTER_MS';

/** Environment variable that turns on the creation stacks of handles. */
export const TRACE_HANDLES_ENV = 'CKPT_TEST_TRACE_HANDLES';

/** How many stack frames a traced handle shows. */
const TRACE_FRAMES = 12;

/** A resource created while tracing, with where it was created. */
interface Traced {
  readonly type: string;
  readonly stack: string;
  readonly resource: WeakRef<object>;
}

let installed = false;
const traced = new Map<number, Traced>();

/**
 * Arms the report and the end for this worker (idempotent). ava calls it
 * through its `require` configuration; a test file needs nothing.
 */
export default function installExitReport(
  reportAtMs: readonly number[] = DEFAULT_REPORT_AT_MS,
  endAfterMs = endAfterFromEnv(),
): void {
  if (installed) return;
  installed = true;
  if (process.env[TRACE_HANDLES_ENV] === '1') traceHandles();
  registerCompletionHandler(() => {
    const endedAt = Date.now();
    for (const ms of reportAtMs) setTimeout(() => process.stderr.write(exitReport(endedAt)), ms).unref();
    setTimeout(() => endLingering(endedAt), endAfterMs).unref();
  });
  process.once('exit', () => {
    warnOfLeakedSockets();
    killDescendantsSync();
  });
}

function endAfterFromEnv(): number {
  const ms = Number(process.env[END_AFTER_ENV]);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : DEFAULT_END_AFTER_MS;
}

/** Reports what holds the worker, then ends it with exit code 1 (the `exit` hooks run). */
function endLingering(testsEndedAt: number): void {
  process.stderr.write(exitReport(testsEndedAt));
  process.stderr.write(
    `[exit-report] pid ${process.pid} (${testFile()}) ended with exit code 1: ` +
      'a test worker must exit on its own once its tests ended\n',
  );
  process.exitCode = 1;
  process.exit();
}

/**
 * A socket whose handle Node lost makes the process spin at 100% CPU after
 * its `exit` event, where no timer runs any more: say so while we still can.
 */
function warnOfLeakedSockets(): void {
  const leaked = leakedSockets();
  if (leaked.length === 0) return;
  const file = testFile();
  const lines = leaked.map((s) => `  ${describeHandle(s)}`);
  process.stderr.write(
    `[exit-report] pid ${process.pid} (${file}) exits with ${leaked.length} socket(s) whose handle was never closed; ` +
      `Node will spin in its handle cleanup and never end:\n${lines.join('\n')}\n`,
  );
}

/** The text of one report: what holds the process, and, when traced, where each was created. */
export function exitReport(testsEndedAt: number): string {
  const file = testFile();
  const seconds = ((Date.now() - testsEndedAt) / 1000).toFixed(1);
  const lines = [
    `[exit-report] pid ${process.pid} (${file}): still running ${seconds} s after its tests ended`,
    `  active resources: ${summarise(process.getActiveResourcesInfo())}`,
    ...activeHandles().map((h) => `  ${describeHandle(h)}`),
    ...tracedLines(),
  ];
  if (traced.size === 0) lines.push(`  (${TRACE_HANDLES_ENV}=1 shows where each timer and socket was created)`);
  return `${lines.join('\n')}\n`;
}

function testFile(): string {
  return relative(process.cwd(), fileURLToPath(test.meta.file));
}

/** `Timeout x3, TCPWRAP x1`: the resource types and how many of each. */
function summarise(types: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const type of types) counts.set(type, (counts.get(type) ?? 0) + 1);
  return [...counts].map(([type, n]) => `${type} x${n}`).join(', ') || '(none)';
}

/** Records the creation stack of every resource but promises, until it is destroyed. */
function traceHandles(): void {
  createHook({
    init(asyncId, type, _trigger, resource) {
      if (type === 'PROMISE') return;
      const stack = (new Error().stack ?? '').split('\n').slice(2);
      const frames = stack.filter((l) => !l.includes('node:internal') && !l.includes('exit-report'));
      traced.set(asyncId, { type, stack: frames.slice(0, TRACE_FRAMES).join('\n'), resource: new WeakRef(resource) });
    },
    destroy(asyncId) {
      traced.delete(asyncId);
    },
  }).enable();
}

/** The traced resources that still hold the process, each with its creation stack. */
function tracedLines(): string[] {
  const lines: string[] = [];
  for (const { type, stack, resource } of traced.values()) {
    const live = resource.deref();
    if (live === undefined || !holdsProcess(live)) continue;
    lines.push(`  created ${type}${timerText(live)}:`, ...stack.split('\n').map((l) => `    ${l.trim()}`));
  }
  return lines;
}

/** ` (every 200 ms)` or ` (after 30000 ms)` for a timer; empty for other resources. */
function timerText(resource: object): string {
  const timer = resource as { _idleTimeout?: number; _repeat?: number | null };
  if (typeof timer._idleTimeout !== 'number') return '';
  return typeof timer._repeat === 'number' ? ` (every ${timer._repeat} ms)` : ` (after ${timer._idleTimeout} ms)`;
}

/** Whether a resource keeps the event loop alive: a timer or handle that is ref'd and not closed. */
function holdsProcess(resource: object): boolean {
  const r = resource as { hasRef?: () => boolean; _destroyed?: boolean; _handle?: { hasRef?: () => boolean } };
  if (r._destroyed === true) return false;
  if (typeof r.hasRef === 'function') return r.hasRef();
  return r._handle?.hasRef?.() ?? false;
}
