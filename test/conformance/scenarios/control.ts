/**
 * Scenarios of what a worker must refuse or take part in on the control
 * plane: forged and stale messages, a declined checkpoint, acknowledgements
 * larger than the coordinator's message limit.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { controlMessageCodecs } from '../../../src/bus/control-codecs.js';
import type { Trigger__Output } from '../../../src/gen/ckpt/v1/Trigger.js';
import type { Behaviour } from '../behaviours.js';
import { ScenarioFailure, type ScenarioRun } from '../harness.js';
import { forbidAborts, pipeline, startPipeline, waitCommittedReports } from '../jobs.js';
import type { Scenario } from '../scenario.js';

/** The last real trigger the coordinator published, read from NATS. */
async function lastTrigger(s: ScenarioRun): Promise<Trigger__Output> {
  let last: Trigger__Output | undefined;
  const sub = s.suite.nc.subscribe(`${s.controlPrefix}.trigger`, {
    callback: (err, msg) => {
      if (err === null) last = controlMessageCodecs().trigger.decode(msg.data);
    },
  });
  await s.waitFor('a trigger on NATS', 20_000, () => last !== undefined);
  sub.unsubscribe();
  return last as Trigger__Output;
}

/** Publishes every forged control message and stale data message of the scenario. */
function forge(nc: NatsConnection, s: ScenarioRun, real: Trigger__Output): number {
  const codecs = controlMessageCodecs();
  const { jobId } = s;
  const { epoch, term, checkpointId } = real;
  const old = epoch - 1;
  const next = checkpointId + 1;
  const subject = (kind: string): string => `${s.controlPrefix}.${kind}`;
  const sent: Array<[string, Uint8Array]> = [
    // Triggers: an old epoch, a lower term, a higher term never confirmed, another job, a far-off id.
    [subject('trigger'), codecs.trigger.encode({ jobId, checkpointId: next + 1000, epoch: old, term })],
    [subject('trigger'), codecs.trigger.encode({ jobId, checkpointId: next + 1000, epoch, term: term - 1 })],
    [subject('trigger'), codecs.trigger.encode({ jobId, checkpointId: next + 1000, epoch, term: term + 7 })],
    [subject('trigger'), codecs.trigger.encode({ jobId: `${jobId}-other`, checkpointId: next + 1000, epoch, term })],
    // Completions of the next checkpoint (not committed): old epoch, lower and unconfirmed higher terms, another job.
    [subject('complete'), codecs.complete.encode({ jobId, checkpointId: next, epoch: old, term })],
    [subject('complete'), codecs.complete.encode({ jobId, checkpointId: next, epoch, term: term - 1 })],
    [subject('complete'), codecs.complete.encode({ jobId, checkpointId: next, epoch, term: term + 7 })],
    [subject('complete'), codecs.complete.encode({ jobId: `${jobId}-other`, checkpointId: next, epoch, term })],
    // Aborts of the pending checkpoints with a lower and an unconfirmed term, of an old epoch.
    [subject('abort'), codecs.abort.encode({ jobId, checkpointId: next, epoch, term: term - 1, reason: 'ABORT_REASON_TIMEOUT' })], // prettier-ignore
    [subject('abort'), codecs.abort.encode({ jobId, checkpointId: next, epoch, term: term + 7, reason: 'ABORT_REASON_COORDINATOR_RESTART' })], // prettier-ignore
    [subject('abort'), codecs.abort.encode({ jobId, checkpointId: next, epoch: old, term, reason: 'ABORT_REASON_TIMEOUT' })], // prettier-ignore
    // Recovers: advisory, whatever they say.
    [subject('recover'), codecs.recover.encode({ jobId, epoch: epoch + 1, checkpointId: 1, term: term - 1 })],
    [subject('recover'), codecs.recover.encode({ jobId, epoch: epoch + 5, checkpointId: 1, term: term + 7 })],
    [subject('recover'), codecs.recover.encode({ jobId, epoch: epoch + 1, checkpointId: 1, term })],
  ];
  for (const kind of ['trigger', 'complete', 'abort', 'recover']) {
    sent.push([subject(kind), new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x01])]);
  }
  for (const [to, bytes] of sent) nc.publish(to, bytes);
  // Stale-epoch records and barriers on data edges: dropped by their ckpt-epoch header and body.
  const stale = natsHeaders();
  stale.set('ckpt-epoch', String(old));
  stale.set('ckpt-key', '1');
  nc.publish(`${s.controlPrefix}.data.src-0.sum-0`, '1000000007', { headers: stale });
  nc.publish(`${s.controlPrefix}.data.sum-1.sink`, '1000000009', { headers: stale });
  const barrier = natsHeaders();
  barrier.set('ckpt-epoch', String(old));
  barrier.set('ckpt-barrier', '1');
  const body = codecs.barrier.encode({ jobId, checkpointId: next, epoch: old, fromTaskId: 'src-1', records: 0 });
  nc.publish(`${s.controlPrefix}.data.src-1.sum-1`, body, { headers: barrier });
  return sent.length + 3;
}

export const staleEpochsAndTerms: Scenario = {
  name: 'stale-epochs-and-terms',
  summary:
    'after a recovery, the runner publishes forged Triggers, Completes, Aborts and Recovers (old epoch, lower ' +
    'term, higher unconfirmed term, other job, undecodable bytes) and old-epoch records and barriers: nothing ' +
    'changes (no recovery, no aborted checkpoint, reports consistent) and checkpoints go on',
  async run(s) {
    await startPipeline(s);
    await s.waitCommits(2, 30_000);
    const first = s.epoch;
    await s.workers[1]?.kill();
    await s.waitEpochAbove(first);
    await s.waitRestored(s.epoch, 30_000);
    await s.waitCommits(2, 30_000);
    const real = await lastTrigger(s);
    const { epoch, latest } = s;
    for (let round = 0; round < 3; round++) {
      forge(s.suite.nc, s, await lastTrigger(s));
      await delay(700);
    }
    await s.waitCommits(4, 30_000);
    if (s.epoch !== epoch) {
      throw new ScenarioFailure(`the forged messages moved the job from epoch ${epoch} to ${s.epoch}`);
    }
    await forbidAborts(
      s,
      [
        'ABORT_REASON_TIMEOUT',
        'ABORT_REASON_DECLINED',
        'ABORT_REASON_TASK_FAILURE',
        'ABORT_REASON_COORDINATOR_RESTART',
        'ABORT_REASON_TRIGGER_FAILED',
      ],
      latest,
    );
    if (real.term === 0) throw new ScenarioFailure('the coordinator published a trigger without a term');
  },
};

export const decline: Scenario = {
  name: 'decline',
  summary:
    'sum-0 declines checkpoint 3: it is aborted with reason DECLINED (GetCheckpointStatistics), no recovery ' +
    'follows, later checkpoints commit',
  async run(s) {
    await startPipeline(s, pipeline({ extra: { 'sum-0': { declineCheckpoint: 3 } } }));
    await s.waitFor('checkpoint 4 or later committed', 30_000, () => s.latest >= 4);
    await s.waitCommits(2, 30_000);
    const third = (await s.history()).find((c) => c.checkpointId === 3);
    if (third === undefined) throw new ScenarioFailure('checkpoint 3 is not in the checkpoint history');
    if (third.state !== 'CHECKPOINT_STATE_ABORTED' || third.abortReason !== 'ABORT_REASON_DECLINED') {
      throw new ScenarioFailure(
        `checkpoint 3 is ${third.state} (${third.abortReason}: ${third.abortMessage}), expected aborted as DECLINED`,
      );
    }
    if (s.epochsSeen.length > 1) {
      throw new ScenarioFailure(`the decline made the job recover (epochs ${s.epochsSeen.join(' -> ')})`);
    }
    if (s.reports.some((r) => r.event === 'committed' && r.checkpoint === 3)) {
      throw new ScenarioFailure('a task reported checkpoint 3 committed');
    }
  },
};

/** Sources of the oversized-ack job. */
const MANY_SOURCES = 300;
/** The coordinator's message limit in oversized-ack. */
const SMALL_MESSAGE_BYTES = 65_536;

export const oversizedAck: Scenario = {
  name: 'oversized-ack',
  summary:
    `one worker process runs ${MANY_SOURCES} sources and a sink against a coordinator with --max-message-bytes ` +
    `${SMALL_MESSAGE_BYTES}, so one acknowledgement of all its tasks would exceed the limit: checkpoints commit`,
  timeoutMs: 120_000,
  async run(s) {
    await s.startCoordinators(1, ['--max-message-bytes', String(SMALL_MESSAGE_BYTES)]);
    const tasks: Record<string, Behaviour & { inputs?: string[] }> = {};
    const sources = Array.from({ length: MANY_SOURCES }, (_, i) => `s${String(i).padStart(3, '0')}`);
    for (const id of sources) tasks[id] = { kind: 'source', rate: 5, limit: 40, keys: 4 };
    tasks.sink = { kind: 'sink', inputs: sources };
    await s.submit({ tasks, policy: { intervalMs: 1000, timeoutMs: 30_000 } });
    s.worker('w1', [...sources, 'sink'], { env: { CKPT_MAX_MESSAGE_BYTES: String(SMALL_MESSAGE_BYTES) } });
    await s.waitCommits(3, 90_000);
    await waitCommittedReports(s, 2, 30_000);
  },
};
