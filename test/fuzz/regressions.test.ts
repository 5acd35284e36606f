/**
 * The failures the fuzz suite found, each as its smallest message, checked
 * with the suite's properties (see runner.ts) against a coordinator child:
 * the call ends with a status carrying its reason within the deadline, the
 * process stays up with no uncaught exception, etcd is unchanged by a
 * refusal, and what the contract calls invalid is refused.
 */
import test from 'ava';
import { useServers } from '../helpers/index.js';
import type { FuzzCase } from './cases.js';
import { JOBS } from './fixture.js';
import { FuzzEnv, fuzzOptions } from './fuzz-env.js';
import { checkCase } from './runner.js';
import { attachTargets, rpcTargets, type Target } from './targets.js';

const servers = useServers();
let env: FuzzEnv | undefined;
const targets = new Map([...rpcTargets(), ...attachTargets()].map((t) => [t.name, t]));

test.after.always(async () => {
  await env?.stop();
});

/** A long string, as the generators write it. */
function long(text: string, count: number): { $text: string; count: number } {
  return { $text: text, count };
}

/** Declares a test that sends `c` to `targetName` and expects every property to hold. */
function regression(title: string, targetName: string, c: FuzzCase): void {
  test.serial(title, async (t) => {
    t.timeout(90_000);
    env ??= new FuzzEnv(servers, { ...fuzzOptions(), probeEvery: 1 });
    const target = targets.get(targetName) as Target;
    const problems = await checkCase(env, target, c);
    if (problems.length > 0) env.markDirty();
    t.deepEqual(problems, []);
  });
}

// Ids that are not printable ASCII went into the trailing metadata of the
// refusal; grpc-js throws on them, and the process ended.
regression('a decline naming job "é" is refused, the process stays up', 'DeclineCheckpoint', {
  form: 'structured',
  message: { jobId: 'é', declines: [] },
});
regression('an acknowledgement of task "\\n" is refused, the process stays up', 'AcknowledgeCheckpoint', {
  form: 'mutation',
  path: 'snapshots.0.taskId',
  value: '\n',
});
regression('a hello naming task "é" is refused, the process stays up', 'Attach.hello', {
  form: 'mutation',
  mode: 'first',
  path: 'hello.taskIds',
  value: ['é'],
});
regression('a standby hello naming task "é" is refused, the process stays up', 'Attach.hello', {
  form: 'structured',
  mode: 'first',
  message: { hello: { workerId: 'fz-standby', jobId: JOBS.main, taskIds: ['é'], standby: true } },
});
regression('a heartbeat naming task "é" is refused, the process stays up', 'Attach.heartbeat', {
  form: 'mutation',
  mode: 'session',
  path: 'heartbeat.tasks.0.taskId',
  value: 'é',
});
regression('a task failure naming task "é" is refused, the process stays up', 'Attach.failure', {
  form: 'mutation',
  mode: 'session',
  path: 'failure.taskId',
  value: 'é',
});

// A refusal repeated the offending value in its status message and
// metadata; past about a megabyte the trailers never reach the caller,
// whose call hangs until its deadline.
regression('GetJob of a 1 MiB job id is refused within the deadline', 'GetJob', {
  form: 'structured',
  message: { jobId: long('x', 1 << 20) },
});
regression('ListJobs with a 1 MiB page token is refused within the deadline', 'ListJobs', {
  form: 'structured',
  message: { pageToken: long('x', 1 << 20) },
});
regression('a task failure naming a 1 MiB task id is refused within the deadline', 'Attach.failure', {
  form: 'mutation',
  mode: 'session',
  path: 'failure.taskId',
  value: long('x', 1 << 20),
});

// A job of one source read by 20,000 tasks took about 10 s to submit,
// blocking the coordinator meanwhile (see also the test below).
regression('a job of 20,000 readers is answered within the deadline', 'SubmitJob', {
  form: 'structured',
  message: {
    spec: {
      jobId: 'fz-readers',
      tasks: [{ taskId: 'src' }, { $repeat: { taskId: 'r-{i}', inputs: ['src'] }, count: 20_000 }],
    },
  },
});

// Values the contract refuses were accepted, and stored or committed.
regression('a policy timeout of 2^63-1 ms is refused', 'SubmitJob', {
  form: 'mutation',
  path: 'spec.policy.timeoutMs',
  value: 2n ** 63n - 1n,
});
regression('an acknowledgement with uri "", checksum md5:0 and size 2^64-1 is refused', 'AcknowledgeCheckpoint', {
  form: 'mutation',
  path: 'snapshots.0.state',
  value: { uri: '', checksum: 'md5:0', sizeBytes: 2n ** 64n - 1n, shared: [] },
});
regression('an acknowledgement with a state size above 2^53-1 in its metrics is refused', 'AcknowledgeCheckpoint', {
  form: 'mutation',
  path: 'snapshots.0.metrics.syncMs',
  value: 2n ** 63n - 1n,
});
regression('a decline with a 2 MiB message is refused', 'DeclineCheckpoint', {
  form: 'mutation',
  path: 'declines.0.message',
  value: long('x', 2 << 20),
});
regression('a hello whose worker id has a space and a tab is refused', 'Attach.hello', {
  form: 'mutation',
  mode: 'first',
  path: 'hello.workerId',
  value: 'fz worker\t1',
});
regression('a heartbeat with busy_ms 2^64-1 is refused', 'Attach.heartbeat', {
  form: 'mutation',
  mode: 'session',
  path: 'heartbeat.tasks.0.busyMs',
  value: 2n ** 64n - 1n,
});
regression('a task failure with a 1 MiB message is refused', 'Attach.failure', {
  form: 'mutation',
  mode: 'session',
  path: 'failure.message',
  value: long('x', 1 << 20),
});
regression('a heartbeat sent at 2^53 ms is refused', 'Attach.heartbeat', {
  form: 'structured',
  mode: 'session',
  message: { heartbeat: { sentAtMs: 2n ** 53n } },
});
regression('a ready report of epoch 2^64-1 is refused', 'Attach.ready', {
  form: 'mutation',
  mode: 'session',
  path: 'ready.epoch',
  value: 2n ** 64n - 1n,
});

/**
 * The longest a GetJob may wait while a big spec is processed. Before the
 * fix the coordinator blocked for 10-17 s, long enough to lose its lease
 * (5 s) and every session (10 s without heartbeat); 2 s stays well below
 * both, with room for a loaded machine.
 */
const STALL_MS = 2_000;

test.serial('a job of 20,000 readers being submitted does not stall the other jobs', async (t) => {
  t.timeout(120_000);
  env ??= new FuzzEnv(servers, { ...fuzzOptions(), probeEvery: 1 });
  const fx = await env.fixture();
  env.markDirty();
  const tasks = [
    { taskId: 'src' },
    ...Array.from({ length: 20_000 }, (_, i) => ({ taskId: `r-${i}`, inputs: ['src'] })),
  ];
  let inFlight = true;
  const submitted = fx.client
    .submitJob({ spec: { jobId: 'fz-readers-probe', tasks } }, { deadlineMs: 60_000 })
    .catch((err: unknown) => err)
    .finally(() => {
      inFlight = false;
    });
  // GetJob calls of another job, one after the other, for as long as the spec is processed.
  let slowestMs = 0;
  while (inFlight) {
    const started = Date.now();
    await fx.client.getJob({ jobId: JOBS.main }, { deadlineMs: 60_000 });
    slowestMs = Math.max(slowestMs, Date.now() - started);
  }
  const outcome = await submitted;
  t.log(`slowest GetJob while the spec was processed: ${slowestMs} ms`);
  t.true(slowestMs < STALL_MS, `a GetJob of another job took ${slowestMs} ms while the spec was processed`);
  t.false(
    outcome instanceof Error && /NOT_LEADER/.test(outcome.message),
    `the coordinator lost its leadership: ${String(outcome)}`,
  );
});
