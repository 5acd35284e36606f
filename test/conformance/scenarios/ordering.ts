/**
 * Scenarios of the races between the worker's two channels (rules R1 and
 * R2): the gRPC session and NATS deliver what the coordinator sent in
 * another order than it sent it, because the runner delays one link.
 */
import { offsetsOf } from '../verify.js';
import { ScenarioFailure, type ScenarioRun } from '../harness.js';
import { PIPELINE_WORKERS, forbidAborts, pipeline, waitCommittedReports } from '../jobs.js';
import type { Scenario } from '../scenario.js';

/** How late the coordinator's messages reach the delayed worker in trigger-before-start. */
const START_DELAY_MS = 3000;

export const triggerBeforeStart: Scenario = {
  name: 'trigger-before-start',
  summary:
    `the coordinator's gRPC messages reach w1 ${START_DELAY_MS} ms late, so Triggers arrive before its StartCommand: ` +
    'a Trigger counts as the start (R1), its sources run and checkpoints commit with their positions, none times out',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit(pipeline({ rate: 800 }));
    s.worker('w2', PIPELINE_WORKERS.w2 as string[]);
    await s.waitFor("w2's tasks restored", 20_000, () => s.reports.some((r) => r.event === 'restored'));
    const proxy = await s.grpcProxy();
    proxy.downMs = START_DELAY_MS;
    s.worker('w1', PIPELINE_WORKERS.w1 as string[], { coordinators: proxy.address });
    await s.waitFor("w1's tasks restored", 30_000, () => s.reports.some((r) => r.task === 'src-0'));
    const restoredAt = s.reportAtMs[s.reports.findIndex((r) => r.task === 'src-0')] as number;
    // The StartCommand leaves the coordinator after w1's ready and reaches w1 START_DELAY_MS later.
    const before = restoredAt + START_DELAY_MS - 500;
    await s.waitFor('a checkpoint with src-0 past offset 0', 30_000, async () => {
      const manifest = s.latest > 0 ? await s.manifest(s.latest) : undefined;
      return manifest !== undefined && (offsetsOf(manifest).get('src-0') ?? 0) > 0;
    });
    const firstAt = await firstCommitWithSource(s, 'src-0');
    if (firstAt === undefined || firstAt > before) {
      const late = firstAt === undefined ? 'never' : `${firstAt - restoredAt} ms after its restore`;
      throw new ScenarioFailure(
        `src-0 first ran in a committed checkpoint ${late}: a Trigger of the current epoch must start the sources ` +
          `before the StartCommand arrives (it was ${START_DELAY_MS} ms late)`,
      );
    }
    await s.waitCommits(4, 30_000);
    await waitCommittedReports(s, 2);
    await forbidAborts(s, ['ABORT_REASON_TIMEOUT', 'ABORT_REASON_DECLINED']);
  },
};

/** When the first committed checkpoint in which `source` is past offset 0 was seen. */
async function firstCommitWithSource(s: ScenarioRun, source: string): Promise<number | undefined> {
  for (let i = 0; i < s.latestSeen.length; i++) {
    const id = s.latestSeen[i] as number;
    const manifest = id > 0 ? await s.manifest(id) : undefined;
    if (manifest !== undefined && (offsetsOf(manifest).get(source) ?? 0) > 0) return s.latestSeenAtMs[i];
  }
  return undefined;
}

/**
 * The checkpoint every task restored from in the current epoch (above
 * `after`); fails when they differ or it is older than `atLeast`.
 */
async function oneRestorePoint(s: ScenarioRun, after: number, atLeast: number): Promise<number> {
  await s.waitEpochAbove(after, 30_000);
  const { epoch, reports } = await s.waitRestoredCurrent(30_000);
  const ids = new Set(reports.map((r) => r.checkpoint));
  if (ids.size !== 1) {
    const list = reports.map((r) => `${r.task} from ${r.checkpoint}`).join(', ');
    throw new ScenarioFailure(`in epoch ${epoch} the tasks restored from different checkpoints: ${list}`);
  }
  const id = [...ids][0] as number;
  if (id < atLeast) {
    throw new ScenarioFailure(`in epoch ${epoch} the tasks restored from ${id}, older than the latest ${atLeast}`);
  }
  return id;
}

export const recoverThenRestore: Scenario = {
  name: 'recover-then-restore',
  summary:
    "w1's gRPC link is delayed when w2 is SIGKILLed, so w1 hears the Recover broadcast before its RestoreCommand: " +
    'it moves only on the RestoreCommand and every task restores in the new epoch from the latest checkpoint',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit(pipeline({ rate: 800 }));
    const proxy = await s.grpcProxy();
    s.worker('w1', PIPELINE_WORKERS.w1 as string[], { coordinators: proxy.address });
    s.worker('w2', PIPELINE_WORKERS.w2 as string[]);
    await s.waitCommits(3, 30_000);
    const { epoch, latest } = s;
    proxy.downMs = 2000;
    await s.workers[1]?.kill();
    await oneRestorePoint(s, epoch, latest);
    proxy.downMs = 0;
    await s.waitCommits(3, 30_000);
  },
};

export const restoreThenRecover: Scenario = {
  name: 'restore-then-recover',
  summary:
    "w1's NATS link is delayed when w2 is SIGKILLed, so w1 gets its RestoreCommand before the Recover broadcast " +
    'and before records of the old epoch: those are dropped, every task restores from the latest checkpoint',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit(pipeline({ rate: 800 }));
    const proxy = await s.natsProxy();
    s.worker('w1', PIPELINE_WORKERS.w1 as string[], { natsUrl: `nats://${proxy.address}` });
    s.worker('w2', PIPELINE_WORKERS.w2 as string[]);
    await s.waitCommits(3, 30_000);
    const { epoch, latest } = s;
    proxy.downMs = 1500;
    await s.workers[1]?.kill();
    await oneRestorePoint(s, epoch, latest);
    proxy.downMs = 0;
    await s.waitCommits(3, 30_000);
  },
};
