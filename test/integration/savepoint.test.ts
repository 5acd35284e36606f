/**
 * Savepoints end to end: the word count stops with a savepoint, starts
 * again from it as a new job with three count tasks instead of two (its
 * keyed state rescaled by key group), stops again and comes back with two;
 * input flows throughout, and the sink's output is exactly-once. Also the
 * refusals of a submit from a savepoint, and what a savepoint stores.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { errorInfo } from '../../src/client/index.js';
import { createLocalDirectoryBackend, createWorker, type Worker } from '../../src/sdk/index.js';
import { expectedCounts, sentences } from '../../examples/wordcount/corpus.js';
import { INPUT_STREAM, OUTPUT_STREAM, inputSubject, wordCountSpec, workerTasks } from '../../examples/wordcount/job.js';
import { taskFor } from '../../examples/wordcount/tasks.js';
import { readStream, verify } from '../../examples/wordcount/verify.js';
import { natsConnection, useServers } from '../helpers/index.js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();

interface Phase {
  jobId: string;
  counts: number;
  worker: Worker;
}

test('the word count rescales its counts 2 → 3 → 2 through savepoints, exactly once', async (t) => {
  t.timeout(180_000);
  const c = await startTestCoordinator(t, servers);
  const nc = await natsConnection(t, servers.natsUrl);
  await (await jetstreamManager(nc)).streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'] });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-savepoint-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const corpus = sentences(1200);
  const js = jetstream(nc);
  let fed = 0;
  const feed = async (upTo: number): Promise<void> => {
    for (; fed < upTo; fed += 1) await js.publish(inputSubject(fed % 2), corpus[fed]);
  };
  const wanted = (n: number): number => [...expectedCounts(corpus.slice(0, n)).values()].reduce((a, b) => a + b, 0);
  const visible = async (n: number): Promise<void> => {
    await eventually(async () => (await readStream(nc, OUTPUT_STREAM)).length >= wanted(n), { timeoutMs: 60_000 });
  };

  const start = async (
    jobId: string,
    counts: number,
    from?: { jobId: string; checkpointId: number },
  ): Promise<Phase> => {
    const spec = wordCountSpec(jobId, 200, { splits: 2, counts });
    const res = await c.client.submitJob({ spec, fromSavepoint: from });
    t.true(res.created);
    const worker = createWorker({
      coordinator: c.address,
      nats: [servers.natsUrl],
      jobId,
      workerId: `${jobId}-worker`,
      state: await createLocalDirectoryBackend({ dir, fsync: false }),
    });
    for (const taskId of workerTasks({ splits: 2, counts }, 1)[0] ?? []) worker.addTask(taskId, taskFor(taskId));
    t.teardown(() => worker.stop());
    await worker.start();
    await c.started(jobId);
    return { jobId, counts, worker };
  };
  const stop = async (phase: Phase, alsoFeed: number): Promise<{ jobId: string; checkpointId: number }> => {
    // Input keeps flowing while the savepoint is taken.
    const [res] = await Promise.all([
      c.client.triggerSavepoint({ jobId: phase.jobId, stop: true }, { deadlineMs: 60_000 }),
      feed(alsoFeed),
    ]);
    t.is(res.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', res.checkpoint?.abortMessage);
    t.is(res.checkpoint?.snapshotType, 'SNAPSHOT_TYPE_SAVEPOINT');
    const ref = res.savepoint?.ref;
    t.truthy(ref);
    t.is((await c.client.getJob({ jobId: phase.jobId })).job?.state, 'JOB_STATE_CANCELED');
    await phase.worker.stop();
    return { jobId: ref?.jobId ?? '', checkpointId: ref?.checkpointId ?? 0 };
  };

  const a = await start('wc-a', 2);
  await feed(300);
  await visible(300);
  const fromA = await stop(a, 500);
  const listed = await c.client.listSavepoints({ jobId: 'wc-a' });
  t.deepEqual(
    listed.savepoints.map((s) => s.ref?.checkpointId),
    [fromA.checkpointId],
  );

  const b = await start('wc-b', 3, fromA);
  t.is((await c.client.getJob({ jobId: 'wc-b' })).job?.latestCheckpointId, fromA.checkpointId);
  await feed(800);
  await visible(800);
  const fromB = await stop(b, 1000);

  await start('wc-c', 2, fromB);
  await feed(corpus.length);
  await visible(corpus.length);
  const verdict = verify(await readStream(nc, OUTPUT_STREAM), expectedCounts(corpus));
  t.deepEqual(verdict.problems, []);
  t.true(verdict.ok);
});

test('a submit from a savepoint refuses a missing savepoint, a rescaled source and dropped state', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const refused = async (promise: Promise<unknown>, reason: string, message: RegExp): Promise<void> => {
    const err = await t.throwsAsync(promise);
    t.is(String(errorInfo(err)?.reason), reason);
    t.regex(err?.message ?? '', message);
  };
  await refused(
    c.client.submitJob({ spec: wordCountSpec('x1', 0), fromSavepoint: { jobId: 'nope', checkpointId: 3 } }),
    'UNKNOWN_CHECKPOINT',
    /job nope has no savepoint 3/,
  );
  const job = await savepointOf(c, 'sp-src');
  const changed = wordCountSpec('x2', 0, { splits: 3, counts: 2 });
  await refused(c.client.submitJob({ spec: changed, fromSavepoint: job }), 'MALFORMED', /is a source/);
  const fewer = wordCountSpec('x3', 0);
  fewer.tasks = fewer.tasks?.filter((task) => task.taskId !== 'split-1');
  for (const task of fewer.tasks ?? []) {
    task.inputs = task.inputs?.filter((i) => i !== 'split-1');
    // Not an operator of splits any more: split-0 restores by id, and split-1's positions have no task.
    if (task.taskId === 'split-0') task.labels = {};
  }
  await refused(
    c.client.submitJob({ spec: fewer, fromSavepoint: job }),
    'MALFORMED',
    /split-1.*allow_non_restored_state/,
  );
  const allowed = await c.client.submitJob({ spec: fewer, fromSavepoint: job, allowNonRestoredState: true });
  t.true(allowed.created);
  const info = await c.client.getJob({ jobId: 'x3' });
  t.is(info.job?.latestCheckpointId, job.checkpointId);
});

/** A savepoint of a word count job with simulated workers; returns its reference. */
async function savepointOf(c: TestCoordinator, jobId: string): Promise<{ jobId: string; checkpointId: number }> {
  const spec = wordCountSpec(jobId, 0);
  await c.client.submitJob({ spec });
  const taskIds = (spec.tasks ?? []).map((task) => task.taskId ?? '');
  await c.worker({ jobId, workerId: 'w', taskIds, spec, stateBytes: 100 });
  await c.started(jobId);
  const res = await c.client.triggerSavepoint({ jobId }, { deadlineMs: 30_000 });
  return { jobId, checkpointId: res.savepoint?.ref?.checkpointId ?? 0 };
}
