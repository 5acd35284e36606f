/**
 * Forged control messages against an SDK worker in a running job (periodic
 * checkpoints), published with a raw NATS connection on the job's control
 * subjects. A worker believes terms, epochs and checkpoint ids from its
 * session only: after each forgery the job keeps checkpointing, the sink's
 * committed snapshot is still there and restores, and its commit hook never
 * runs for a forged id.
 */
import test from 'ava';
import { controlMessageCodecs } from '../../src/bus/index.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { runningJob, type LogLine, type RunningJob } from './worker-harness.js';

const servers = useServers();
const codecs = controlMessageCodecs();

/** The largest id a forger can name that still decodes exactly. */
const MAX_ID = Number.MAX_SAFE_INTEGER;
/** 2^53: the first integer a JavaScript number no longer tells apart from its neighbour. */
const HUGE = 2 ** 53;

/** A drop line of the worker's drop log for `kind` and `reason`. */
function dropLine(kind: string, reason: string): (line: LogLine) => boolean {
  return (line) => line.kind === kind && (line.reasons as Record<string, number> | undefined)?.[reason] !== undefined;
}

/** The newest checkpoint the worker saw complete. */
function latest(job: RunningJob): number {
  return job.completes.at(-1) ?? 0;
}

/** The job restores its latest checkpoint in a new epoch: every task restores it, none fails, checkpoints go on. */
async function restoresCleanly(job: RunningJob): Promise<{ checkpointId: number; failures: string[] }> {
  const failures: string[] = [];
  job.worker.on('failed', (e) => failures.push(`${e.taskId}: ${e.error.message}`));
  const epoch = job.worker.epoch;
  const restored = job.worker.waitFor('restored', (e) => e.epoch > epoch, { timeoutMs: 15_000 });
  const { checkpointId } = await job.c.client.restoreJob({ jobId: job.jobId, checkpointId: 0 });
  const [event] = await restored;
  if (event.checkpointId !== checkpointId || event.taskIds.length !== 2) {
    throw new Error(`restored ${JSON.stringify(event)} instead of checkpoint ${checkpointId}`);
  }
  await job.committedAbove(checkpointId);
  return { checkpointId, failures };
}

test('a forged CheckpointComplete of id 2^53-1 runs no commit hook and releases no snapshot', async (t) => {
  const job = await runningJob(t, servers);
  const { term = 0 } = job.worker.welcome ?? {};
  const epoch = job.worker.epoch;
  const before = latest(job);
  t.true((await job.sinkSnapshots()).includes(`${before}-${epoch}.snap`));

  // As observed (epoch 0), and with everything else the worker knows right.
  await job.forge('complete', codecs.complete.encode({ jobId: job.jobId, checkpointId: MAX_ID, epoch: 0, term }));
  await job.forge('complete', codecs.complete.encode({ jobId: job.jobId, checkpointId: MAX_ID, epoch, term }));
  await job.forge('complete', codecs.complete.encode({ jobId: job.jobId, checkpointId: before + 2, epoch, term }));
  await job.log.waitFor(dropLine('complete', 'other-epoch'));
  await job.log.waitFor(dropLine('complete', 'not-acknowledged'));
  t.true((await job.sinkSnapshots()).includes(`${before}-${epoch}.snap`), 'the last committed snapshot is kept');

  const after = await job.committedAbove(before + 2);
  t.false(job.commits.includes(MAX_ID), 'the commit hook never ran for the forged id');
  await eventually(() => job.commits.includes(after), { what: 'the commit hook of the next checkpoint' });
  t.true(job.commits.every((id) => id < MAX_ID));
  const { failures } = await restoresCleanly(job);
  t.deepEqual(failures, [], 'the restore found every snapshot');
  t.false(job.commits.includes(MAX_ID));
});

test('a forged CheckpointAbort of term 2^53 is held, never believed; the job keeps checkpointing', async (t) => {
  const job = await runningJob(t, servers);
  const { term = 0 } = job.worker.welcome ?? {};
  const epoch = job.worker.epoch;
  const before = latest(job);
  const aborts: number[] = [];
  job.worker.on('abort', (a) => aborts.push(a.checkpointId));
  const forged = (
    checkpointId: number,
    messageTerm: number,
    reason: 'ABORT_REASON_COORDINATOR_RESTART' | 'ABORT_REASON_TIMEOUT',
  ) => codecs.abort.encode({ jobId: job.jobId, checkpointId, epoch, reason, message: 'forged', term: messageTerm });
  await job.forge('abort', forged(before + 1, HUGE, 'ABORT_REASON_COORDINATOR_RESTART'));
  await job.forge('abort', forged(before + 2, HUGE, 'ABORT_REASON_TIMEOUT'));
  await job.forge('abort', forged(HUGE, term, 'ABORT_REASON_TIMEOUT'));
  await job.log.waitFor(dropLine('abort', 'implausible-id'));

  const after = await job.committedAbove(before + 2);
  await job.committedAbove(after);
  t.deepEqual(
    aborts.filter((id) => id === HUGE || id <= before + 2),
    [],
    'no forged abort reached the tasks',
  );
  t.is(job.worker.epoch, epoch);
  await eventually(() => job.commits.includes(after), { what: 'the commit hook of the next checkpoint' });
  const { failures } = await restoresCleanly(job);
  t.deepEqual(failures, []);
});

test('a forged Recover of epoch 2^53 moves nothing; the job keeps checkpointing in its epoch', async (t) => {
  const job = await runningJob(t, servers);
  const { term = 0 } = job.worker.welcome ?? {};
  const epoch = job.worker.epoch;
  const before = latest(job);
  const restores: number[] = [];
  job.worker.on('restored', (e) => restores.push(e.epoch));
  const recovered = job.worker.waitFor('recover', (r) => r.epoch === HUGE, { timeoutMs: 5000 });
  await job.forge('recover', codecs.recover.encode({ jobId: job.jobId, epoch: HUGE, checkpointId: MAX_ID, term }));
  await recovered;
  const after = await job.committedAbove(before);
  await job.committedAbove(after);
  t.is(job.worker.epoch, epoch, 'the epoch is the session’s');
  t.deepEqual(restores, [], 'nothing restored');
  const job2 = (await job.c.client.getJob({ jobId: job.jobId })).job;
  t.is(job2?.epoch, epoch, 'the coordinator never saw a recovery');
  await eventually(() => job.commits.includes(after), { what: 'the commit hook of the next checkpoint' });
});

test('a forged Trigger of id 2^53-1 is dropped; the job keeps checkpointing', async (t) => {
  const job = await runningJob(t, servers);
  const { term = 0 } = job.worker.welcome ?? {};
  const epoch = job.worker.epoch;
  const before = latest(job);
  const snapshots: number[] = [];
  job.worker.on('snapshot', (e) => snapshots.push(e.checkpointId));
  await job.forge('trigger', codecs.trigger.encode({ jobId: job.jobId, checkpointId: MAX_ID, epoch, term }));
  await job.log.waitFor(dropLine('trigger', 'implausible-id'));
  const after = await job.committedAbove(before);
  await job.committedAbove(after);
  t.false(snapshots.includes(MAX_ID), 'no task snapshotted for the forged id');
  t.is(job.worker.epoch, epoch);
  const { failures } = await restoresCleanly(job);
  t.deepEqual(failures, []);
});

test('a forged Trigger of a plausible id makes the source decline what it can then no longer take, at once', async (t) => {
  const job = await runningJob(t, servers, { policy: { timeoutMs: 60_000 } });
  const { term = 0 } = job.worker.welcome ?? {};
  const epoch = job.worker.epoch;
  const before = latest(job);
  const forgedId = before + 4;
  const declined = job.worker.waitFor('checkpoint-declined', (e) => e.checkpointId <= forgedId, { timeoutMs: 10_000 });
  await job.forge('trigger', codecs.trigger.encode({ jobId: job.jobId, checkpointId: forgedId, epoch, term }));
  const [decline] = await declined;
  t.deepEqual(decline.taskIds, ['src']);
  const after = await job.committedAbove(forgedId);
  t.true(after > forgedId);
  const { checkpoint } = await job.c.query.getCheckpoint({ jobId: job.jobId, checkpointId: decline.checkpointId });
  t.like(checkpoint, { state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_DECLINED' });
  const tookMs = Number(checkpoint?.finishedAtMs ?? 0) - Number(checkpoint?.triggeredAtMs ?? 0);
  t.true(tookMs < 5000, `aborted after ${tookMs} ms, not at its 60 s timeout`);
  await eventually(() => job.commits.includes(after), { what: 'the commit hook of the next checkpoint' });
  t.is(job.worker.epoch, epoch, 'no recovery was needed');
});
