/**
 * Scenarios of a job running without faults: the first start, and
 * checkpoints in the aligned and unaligned modes.
 */
import { ScenarioFailure, type ScenarioRun } from '../harness.js';
import { PIPELINE_KEYS, pipeline, requireRestoredFrom, startPipeline, waitCommittedReports } from '../jobs.js';
import type { Scenario } from '../scenario.js';
import { residueTotals } from '../expected.js';

export const firstStart: Scenario = {
  name: 'first-start',
  summary: 'a new job: every task restores from nothing (checkpoint 0) in the first epoch, then checkpoints commit',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit({
      tasks: {
        src: { kind: 'source', rate: 300, limit: 0, keys: 16 },
        sink: { kind: 'sink', inputs: ['src'] },
      },
      policy: { intervalMs: 300, timeoutMs: 10_000 },
    });
    s.worker('w1', ['src', 'sink']);
    await s.waitFor('the first epoch', 20_000, () => s.epoch > 0);
    await requireRestoredFrom(s, s.epochsSeen[0] ?? 1, 0);
    await s.waitCommits(3);
    await waitCommittedReports(s, 2);
  },
};

export const aligned: Scenario = {
  name: 'aligned',
  summary: 'two sources, two keyed sums, one sink over two worker processes, aligned barriers: reports match every cut',
  async run(s) {
    await startPipeline(s, pipeline({ mode: 'CHECKPOINT_MODE_ALIGNED', rate: 800 }));
    await s.waitCommits(6, 30_000);
    await waitCommittedReports(s, 3);
  },
};

/** Records each source emits in the unaligned scenario. */
const UNALIGNED_LIMIT = 6000;

export const unaligned: Scenario = {
  name: 'unaligned',
  summary:
    'the pipeline with unaligned barriers while records are in flight, a worker SIGKILLed midway: ' +
    'reports never exceed the cut, and once the sources end the sink holds every record exactly once',
  async run(s) {
    await startPipeline(s, pipeline({ mode: 'CHECKPOINT_MODE_UNALIGNED', rate: 1000, limit: UNALIGNED_LIMIT }));
    await s.waitCommits(3, 30_000);
    const epoch = s.epoch;
    await s.workers[1]?.kill();
    await s.waitEpochAbove(epoch);
    await s.waitRestored(s.epoch);
    await waitExactTotals(s, 60_000);
  },
};

/** Waits for a committed report of the sink holding every record of both sources (each ending at `limit`) exactly once. */
export async function waitExactTotals(s: ScenarioRun, timeoutMs: number, limit = UNALIGNED_LIMIT): Promise<void> {
  const one = Array.from({ length: PIPELINE_KEYS }, (_, r) => residueTotals(limit, PIPELINE_KEYS, r)).reduce(
    (a, v) => ({ count: a.count + v.count, sum: a.sum + v.sum }),
    { count: 0, sum: 0 },
  );
  const want = { count: 2 * one.count, sum: 2 * one.sum };
  await s.waitFor(`the sink's committed report of count ${want.count} sum ${want.sum}`, timeoutMs, () =>
    s.reports.some((r) => r.task === 'sink' && r.event === 'committed' && r.count >= want.count),
  );
  const last = s.reports.filter((r) => r.task === 'sink' && r.event === 'committed').at(-1);
  if (last === undefined || last.count !== want.count || last.sum !== want.sum) {
    throw new ScenarioFailure(
      `the sink ended with count ${last?.count} sum ${last?.sum}, expected count ${want.count} sum ${want.sum}`,
    );
  }
}
