/**
 * Scenarios of real faults: a record the sender never counted, a restarted
 * NATS server, a SIGKILLed worker, a SIGKILLed leader coordinator, a hung
 * task.
 */
import { headers as natsHeaders } from '@nats-io/nats-core';
import { ScenarioFailure, type ScenarioRun } from '../harness.js';
import { PIPELINE_WORKERS, pipeline, requireRestoredFrom, startPipeline, waitCommittedReports } from '../jobs.js';
import type { Scenario } from '../scenario.js';

/**
 * Fails unless every task restored in the job's current epoch (above
 * `after`) from one committed checkpoint at least `atLeast`.
 */
async function requireOneRestore(s: ScenarioRun, after: number, atLeast: number): Promise<number> {
  await s.waitEpochAbove(after, 30_000);
  const { epoch, reports } = await s.waitRestoredCurrent(30_000);
  const ids = [...new Set(reports.map((r) => r.checkpoint))];
  if (ids.length !== 1 || (ids[0] as number) < atLeast) {
    const list = reports.map((r) => `${r.task} from ${r.checkpoint}`).join(', ');
    throw new ScenarioFailure(
      `in epoch ${epoch} every task must restore from one checkpoint, at least the latest ${atLeast}: ${list}`,
    );
  }
  return ids[0] as number;
}

/**
 * Fails unless the restored reports of `epoch` that arrived all name one
 * committed checkpoint, at least `atLeast`.
 */
function requireRestoredFromOne(s: ScenarioRun, epoch: number, atLeast: number): void {
  const reports = s.reports.filter((r) => r.event === 'restored' && r.epoch === epoch);
  const ids = [...new Set(reports.map((r) => r.checkpoint))];
  if (ids.length > 1 || (ids.length === 1 && (ids[0] as number) < atLeast)) {
    const list = reports.map((r) => `${r.task} from ${r.checkpoint}`).join(', ');
    throw new ScenarioFailure(
      `in epoch ${epoch} every task must restore from one checkpoint, at least the latest ${atLeast}: ${list}`,
    );
  }
}

export const lostRecords: Scenario = {
  name: 'lost-records',
  summary:
    'the runner publishes a record its sender never counted on the sum-0 -> sink edge, with the current epoch: ' +
    "the sink's barrier count check fails the task and the job recovers; then nats-server restarts mid-stream and " +
    'the job recovers again; no committed checkpoint holds the extra record',
  async run(s) {
    await startPipeline(s, pipeline({ rate: 800 }));
    await s.waitCommits(3, 30_000);
    const { epoch, latest } = s;
    const h = natsHeaders();
    h.set('ckpt-epoch', String(epoch));
    h.set('ckpt-key', '1');
    s.suite.nc.publish(`${s.controlPrefix}.data.sum-0.sink`, '1000000007', { headers: h });
    await s.waitEpochAbove(epoch, 15_000);
    await requireOneRestore(s, epoch, latest);
    await s.waitCommits(2, 30_000);
    const before = { epoch: s.epoch, latest: s.latest };
    await s.suite.nats.restart();
    // The workers may restore and report before the runner's own connection
    // is back and subscribed: reports travel on core NATS, so some restored
    // reports of this epoch can be lost to the runner. Those that arrive
    // must name one checkpoint; the commits that follow are checked in full.
    await s.waitEpochAbove(before.epoch, 30_000);
    await s.waitCommits(3, 30_000);
    requireRestoredFromOne(s, s.epoch, before.latest);
  },
};

export const sigkillRestart: Scenario = {
  name: 'sigkill-restart',
  summary:
    'with snapshots in a JetStream Object Store, w1 is SIGKILLed and its supervisor starts it again: the job ' +
    "recovers, every task restores the latest checkpoint (restored reports equal that checkpoint's cut), " +
    'checkpoints commit again',
  async run(s) {
    await startPipeline(s, pipeline(), 'nats-obj');
    await s.waitCommits(3, 30_000);
    const { epoch, latest } = s;
    await s.workers[0]?.kill();
    await requireOneRestore(s, epoch, latest);
    await s.waitCommits(3, 30_000);
    await waitCommittedReports(s, 4);
  },
};

export const leaderFailover: Scenario = {
  name: 'leader-failover',
  summary:
    'two coordinators; the leader is SIGKILLed: the workers follow the new leader, checkpoints go on with ' +
    'higher ids and reports stay consistent',
  async run(s) {
    await s.startCoordinators(2);
    await s.submit(pipeline());
    for (const [label, tasks] of Object.entries(PIPELINE_WORKERS)) s.worker(label, tasks);
    await s.waitCommits(3, 30_000);
    const leader = await s.leader();
    const before = s.latest;
    await s.coordinators[leader]?.child.kill();
    await s.leader(30_000);
    await s.waitCommits(3, 40_000);
    const after = s.reports.filter((r) => r.event === 'committed' && r.checkpoint > before);
    const silent = s.graph.filter((t) => !after.some((r) => r.task === t.taskId)).map((t) => t.taskId);
    if (silent.length > 0) {
      await s.waitFor(`committed reports after the fail-over from ${silent.join(', ')}`, 20_000, () =>
        s.graph.every((t) =>
          s.reports.some((r) => r.task === t.taskId && r.event === 'committed' && r.checkpoint > before),
        ),
      );
    }
  },
};

export const hungTask: Scenario = {
  name: 'hung-task',
  summary:
    'the sink hangs at its 1500th record with task_stall_timeout_ms 2000: the coordinator fails the task, ' +
    'the job recovers (in the worker or through a restart), and checkpoints commit again',
  async run(s) {
    await startPipeline(
      s,
      pipeline({ rate: 500, policy: { taskStallTimeoutMs: 2000 }, extra: { sink: { hangAtRecord: 1500 } } }),
    );
    await s.waitFor('the first epoch', 20_000, () => s.epoch > 0);
    const first = s.epoch;
    const next = await s.waitEpochAbove(first, 40_000);
    await s.waitRestored(next, 30_000);
    await s.waitCommits(3, 30_000);
  },
};

export const restoreChosen: Scenario = {
  name: 'restore-chosen',
  summary:
    'RestoreJob to an older retained checkpoint: every task restores from exactly that checkpoint, with its cut, ' +
    'and checkpoints commit again',
  async run(s) {
    await startPipeline(s);
    await s.waitCommits(5, 30_000);
    const committed = [...new Set(s.latestSeen.filter((l) => l > 0))];
    const chosen = committed.at(-3) as number;
    const response = await s.retry(
      () => s.client.restoreJob({ jobId: s.jobId, checkpointId: chosen }),
      `RestoreJob to ${chosen}`,
    );
    if (response.checkpointId !== chosen) {
      throw new ScenarioFailure(`RestoreJob to ${chosen} answered checkpoint ${response.checkpointId}`);
    }
    await requireRestoredFrom(s, response.epoch, chosen);
    await s.waitCommits(2, 30_000);
  },
};
