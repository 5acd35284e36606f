/**
 * The fault suite, short: two word count jobs on a 3-member etcd cluster,
 * NATS and three coordinators sharing two job groups while a seeded schedule of faults hits the
 * workers, the coordinators, etcd members, NATS and the links between them;
 * afterwards each job's output must be exactly-once and etcd's history sound.
 * `make chaos` runs the long variant.
 *
 * The suite runs in a process of its own (`test/chaos/main.ts`), as `make
 * chaos` runs it: run inside the test worker, it sometimes left that
 * process unable to exit, spinning in Node's handle cleanup after the
 * last test, so that the whole test run never ended.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { FAULT_KINDS } from '../chaos/options.js';
import type { ChaosReport } from '../chaos/run.js';

/** The suite's own limit; the test ends the process if it takes longer. */
const RUN_TIMEOUT_MS = 165_000;

test('two word counts stay exactly-once and etcd stays sound through 10 seeded faults', async (t) => {
  t.timeout(RUN_TIMEOUT_MS + 10_000);
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-chaos-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const reportFile = join(dir, 'report.json');
  const args = [
    // Two groups: wordcount is in group 0 and wordcount-2 in group 1, each with a leader of its own.
    ...['--seed', '7', '--faults', '10', '--coordinators', '3', '--jobs', '2', '--job-groups', '2'],
    // Every kind: processes killed and paused, etcd members killed, NATS restarted, links cut.
    ...['--kinds', FAULT_KINDS.join(','), '--nats-cluster'],
    ...['--spacing-ms', '4000', '--sentences-per-second', '80', '--settle-timeout-ms', '40000'],
    ...['--report-json', reportFile],
  ];
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/chaos/main.ts', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => {
      t.log(`the fault suite took longer than ${RUN_TIMEOUT_MS} ms; killing it`);
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    let pending = '';
    const logLines = (chunk: Buffer): void => {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) t.log(line);
    };
    child.stdout.on('data', logLines);
    child.stderr.on('data', logLines);
    child.on('close', (exitCode) => {
      clearTimeout(timer);
      if (pending !== '') t.log(pending);
      resolve(exitCode);
    });
  });
  const report = JSON.parse(await readFile(reportFile, 'utf8')) as ChaosReport;
  t.is(code, 0, 'the suite found no violation');
  t.is(report.faults.length, 10);
  t.true(report.config.secure, 'the suite ran on the secured topology');
  t.is(report.config.jobGroups, 2);
  t.true(report.recoveries >= 1, 'the faults caused at least one recovery');
  t.true(report.committed >= 3, 'checkpoints were committed while faults ran');
  t.deepEqual(
    report.jobs.map((j) => j.jobId),
    ['wordcount', 'wordcount-2'],
  );
  for (const job of report.jobs) {
    t.true(job.exactlyOnce.ok, `${job.jobId} is exactly-once`);
    t.true(job.committed >= 1, `${job.jobId} committed checkpoints`);
    t.true((job.state?.piecesChecked ?? 0) > 0, `${job.jobId}: the retained checkpoints' state pieces were read back`);
  }
  t.deepEqual(report.violations, []);
});
