/**
 * A test worker that does not exit on its own is ended, and takes every
 * process it left running with it: ava itself then ends, even though one of
 * those processes shared the worker's output pipes (ava waits for them).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { END_AFTER_ENV } from '../helpers/exit-report.js';
import { descendantPids } from '../helpers/handles.js';

/** Whether `pid` runs: present in /proc and not a zombie. */
function runs(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('a lingering worker is reported, ended with exit code 1, and its child is killed', async (t) => {
  t.timeout(150_000);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-exit-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'child.pid');
  const ava = spawn(
    process.execPath,
    ['node_modules/ava/entrypoints/cli.mjs', '--config', 'test/fixtures/lingering.config.mjs'],
    {
      env: { ...process.env, [END_AFTER_ENV]: '2000', CKPT_TEST_CHILD_PID_FILE: pidFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  ava.stdout.on('data', (chunk: Buffer) => (output += String(chunk)));
  ava.stderr.on('data', (chunk: Buffer) => (output += String(chunk)));
  // The fixture's child sleeps 300 s: were it left running, ava would wait for it that long.
  const killer = setTimeout(() => ava.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => ava.once('close', resolve));
  clearTimeout(killer);
  // The output is shown only when an assertion fails: it holds the ✘ line of the fixture's run.
  t.is(code, 1, `ava fails the run; it printed:\n${output}`);
  t.regex(
    output,
    /\[exit-report\] pid \d+ \(test\/fixtures\/lingering-worker\.ts\): still running 2\.\d s after its tests ended/,
  );
  t.regex(output, /child process pid \d+: sleep 300/);
  t.regex(output, /ended with exit code 1: a test worker must exit on its own once its tests ended/);
  t.regex(output, /1 test passed/);
  const child = Number(await readFile(pidFile, 'utf8'));
  t.false(runs(child), `the worker's child ${child} was killed`);
});

test('descendantPids lists children and grandchildren', async (t) => {
  const shell = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
  t.teardown(() => {
    for (const pid of descendantPids(shell.pid)) process.kill(pid, 'SIGKILL');
    shell.kill('SIGKILL');
  });
  let below: number[] = [];
  for (let i = 0; i < 100 && below.length === 0; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    below = descendantPids(shell.pid);
  }
  t.is(below.length, 1, 'sleep runs below the shell');
  const mine = descendantPids();
  t.true(mine.includes(shell.pid ?? -1));
  t.true(mine.includes(below[0] ?? -1));
});
