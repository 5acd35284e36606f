/**
 * examples/wordcount/start-worker.sh, the deploy manifests' worker command:
 * it starts the word count worker from its V8 startup snapshot, and, when
 * node cannot load the snapshot (a truncated file, a snapshot of another
 * node, no file), from its bundle, with a line saying why. A worker that
 * started from the snapshot is never started a second time, and a SIGTERM
 * reaches it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { runTool } from '../helpers/run-tool.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const USAGE = /worker: usage: worker\.ts --coordinator ADDR/g;
const FALLBACK = /^start-worker: /m;

/** A copy of what `make build` writes of the worker: bundle, launcher, snapshot and start-worker.sh. */
let dir = '';
let blob = '';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-start-worker-'));
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const into = (command: string): string =>
    command
      .replaceAll('dist/examples/wordcount/', `${dir}/`)
      .replace(/(^|&& )esbuild /g, `$1${join(REPO_ROOT, 'node_modules/.bin/esbuild')} `);
  const [bundle = ''] = (pkg.scripts['bundle:worker'] ?? '').split(' && ');
  const launcher = `esbuild examples/wordcount/bundled-worker.ts --platform=node --format=esm --log-level=warning --outfile=dist/examples/wordcount/bundled-worker.js`;
  const built = await runTool(
    'sh',
    ['-c', [bundle, launcher, pkg.scripts['snapshot:worker'] ?? ''].map(into).join(' && ')],
    { cwd: REPO_ROOT },
  );
  if (!built.ok) throw new Error(`the worker's build failed: ${built.out}`);
  // bundled-worker.js is an ES module, as tsc writes it under the package's "type": "module".
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  await copyFile(join(REPO_ROOT, 'examples/wordcount/start-worker.sh'), join(dir, 'start-worker.sh'));
  blob = join(dir, 'worker.snapshot.blob');
});

test.after.always(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** What a run of start-worker.sh printed (stdout and stderr, in order) and its exit status. */
interface Run {
  status: number | null;
  out: string;
}

/** Runs start-worker.sh with `args`, the snapshot file `snapshot` (the built one when undefined), in `cwd`. */
function startWorker(args: readonly string[], snapshot?: string, cwd = dir): Promise<Run> {
  const env = { ...process.env, ...(snapshot === undefined ? {} : { CKPT_WORKER_SNAPSHOT: snapshot }) };
  const child = spawn('sh', [join(cwd, 'start-worker.sh'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) => child.once('close', (status) => resolve({ status, out })));
}

/** A copy of the built snapshot changed by `change`, as file `name`. */
async function changedSnapshot(name: string, change: (bytes: Buffer) => Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, change(await readFile(blob)));
  return path;
}

test('a worker starts from its startup snapshot, with nothing of the launcher in its output', async (t) => {
  const run = await startWorker([]);
  t.is(run.status, 1, 'without flags the worker asks for them and ends with status 1');
  t.is(run.out.match(USAGE)?.length, 1, run.out);
  t.notRegex(run.out, FALLBACK);
  // The snapshot holds the bundle's modules: with the bundle gone, the worker still starts, so from the snapshot.
  const alone = join(dir, 'alone');
  await mkdir(alone);
  await copyFile(join(dir, 'start-worker.sh'), join(alone, 'start-worker.sh'));
  await copyFile(blob, join(alone, 'worker.snapshot.blob'));
  const fromSnapshot = await startWorker(['--job'], undefined, alone);
  t.regex(fromSnapshot.out, /worker: Option '--job <value>' argument missing/);
  t.notRegex(fromSnapshot.out, FALLBACK);
});

test('a truncated snapshot: the worker starts from the bundle, and the launcher says why', async (t) => {
  const truncated = await changedSnapshot('truncated.blob', (b) => b.subarray(0, 100_000));
  const run = await startWorker([], truncated);
  t.is(run.status, 1);
  t.regex(
    run.out,
    new RegExp(
      `^start-worker: cannot start the worker from the startup snapshot ${truncated} with node ${process.version}: ` +
        `(node|V8) (crashed|aborted|stopped) reading it \\(SIG[A-Z]+, status 1[0-9]{2}: a damaged .*\\); ` +
        `starting it from the bundle ${join(dir, 'bundled-worker.js')}$`,
      'm',
    ),
    run.out,
  );
  t.is(run.out.match(USAGE)?.length, 1, 'the worker ran once, from the bundle');
});

test("another node's snapshot: node's refusal and the launcher's line, then the worker from the bundle", async (t) => {
  // The snapshot's header names the node version that wrote it (without its v).
  const version = process.version.slice(1);
  const other = await changedSnapshot('other-node.blob', (b) => {
    const at = b.indexOf(version);
    if (at < 0 || at > 64) throw new Error(`no node version ${version} in the snapshot's header`);
    const copy = Buffer.from(b);
    copy.write('19.0.0'.padEnd(version.length, '0').slice(0, version.length), at, 'latin1');
    return copy;
  });
  const run = await startWorker(['--job'], other);
  t.is(run.status, 1);
  t.regex(run.out, /Failed to load the startup snapshot because it was built with ?Node\.js version 19\.0\.0/);
  t.regex(run.out, /^start-worker: cannot start the worker .*: node refused it \(exit status 14;.*from the bundle/m);
  t.regex(run.out, /worker: Option '--job <value>' argument missing/);
});

test('no snapshot file, or none asked for: the bundle, saying so only when one was expected', async (t) => {
  const missing = join(dir, 'missing.blob');
  const run = await startWorker([], missing);
  t.regex(
    run.out,
    new RegExp(`^start-worker: no readable startup snapshot at ${missing}; starting the worker from`, 'm'),
  );
  t.is(run.out.match(USAGE)?.length, 1);
  const none = await startWorker([], '');
  t.is(none.out.match(USAGE)?.length, 1);
  t.notRegex(none.out, FALLBACK);
});

/** A worker started by start-worker.sh in the background, against nothing (it waits for its coordinator). */
function startRunning(snapshot: string | undefined, markers: string): { child: ChildProcess; output: () => string } {
  const args = [
    join(dir, 'start-worker.sh'),
    '--coordinator=127.0.0.1:9',
    '--nats=nats://127.0.0.1:9',
    '--tasks=split-0',
    `--state-dir=${join(markers, 'state')}`,
  ];
  const env = {
    ...process.env,
    TMPDIR: markers,
    ...(snapshot === undefined ? {} : { CKPT_WORKER_SNAPSHOT: snapshot }),
  };
  const child = spawn('sh', args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return { child, output: () => out };
}

/** SIGKILLs what is left of a run: the launcher's process group (the launcher, node under it). */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** The command line of process `pid` and of its children, from /proc. */
async function processTree(pid: number): Promise<string[]> {
  const line = async (p: number | string): Promise<string> =>
    (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim();
  return [await line(pid), ...(await Promise.all(children.split(/\s+/).filter(Boolean).map(line)))];
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : -1))));
}

test('a running worker: from the snapshot it says it started (the marker) and gets the SIGTERM; from a corrupt one, the bundle runs', async (t) => {
  if (process.platform !== 'linux') {
    t.log('skipped: reads /proc');
    t.pass();
    return;
  }
  const markers = await mkdtemp(join(tmpdir(), 'ckpt-start-marker-'));
  t.teardown(() => rm(markers, { recursive: true, force: true }));

  const good = startRunning(undefined, markers);
  t.teardown(() => killGroup(good.child));
  const pid = good.child.pid ?? 0;
  let tree: string[] = [];
  await waitFor('the worker under start-worker.sh, and its start marker', async () => {
    tree = await processTree(pid);
    const marks = (await readdir(markers)).filter((n) => n.startsWith('ckpt-worker-started.'));
    const written = await Promise.all(marks.map((n) => readFile(join(markers, n), 'utf8')));
    return tree.length === 2 && written.some((w) => /^\d+\n$/.test(w));
  });
  t.regex(tree[0] ?? '', /^sh .*start-worker\.sh/);
  t.regex(tree[1] ?? '', /^\S*node --snapshot-blob \S+worker\.snapshot\.blob \S+bundled-worker\.js --coordinator=/);
  good.child.kill('SIGTERM');
  const timeout = new AbortController();
  const status = await Promise.race([
    exited(good.child),
    delay(15_000, 'still running', { signal: timeout.signal }).catch(() => 'aborted'),
  ]);
  timeout.abort();
  t.not(status, 'still running', 'the SIGTERM reached the worker, which ended, and the launcher with it');
  t.notRegex(good.output(), FALLBACK, 'the worker was not started again from the bundle');
  t.deepEqual(
    (await readdir(markers)).filter((n) => n.startsWith('ckpt-worker-started.')),
    [],
    'the marker is removed',
  );

  const corrupt = await changedSnapshot('corrupt.blob', (b) => Buffer.concat([Buffer.from('not a snapshot'), b]));
  const fallback = startRunning(corrupt, markers);
  t.teardown(() => killGroup(fallback.child));
  await waitFor('the worker running from the bundle', async () => {
    tree = await processTree(fallback.child.pid ?? 0);
    return /^\S*node \S+bundled-worker\.js --coordinator=/.test(tree[0] ?? '');
  });
  // The launcher made way for node (exec): the process the container runtime signals is the worker itself.
  // (The worker's own children, if any, are not the launcher's business.)
  t.regex(tree[0] ?? '', /^\S*node \S+bundled-worker\.js --coordinator=/);
  t.notRegex(
    tree.join('\n'),
    /start-worker\.sh/,
    `no launcher left in the worker's process tree: ${JSON.stringify(tree)}`,
  );
  t.regex(fallback.output(), /^start-worker: cannot start the worker from the startup snapshot \S+corrupt\.blob /m);
  await delay(500);
  t.true(fallback.child.exitCode === null, `the worker from the bundle keeps running: ${fallback.output()}`);
  fallback.child.kill('SIGTERM');
  await exited(fallback.child);
});
