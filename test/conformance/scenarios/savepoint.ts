/**
 * Scenarios of a job started from a savepoint of another job.
 */
import { expectedValues } from '../expected.js';
import { ScenarioFailure } from '../harness.js';
import { PIPELINE_WORKERS, pipeline, requireRestoredFrom } from '../jobs.js';
import type { Scenario } from '../scenario.js';
import { offsetsOf } from '../verify.js';
import { waitExactTotals } from './basic.js';

/** Records each source emits in the job started from the savepoint. */
const FROM_SAVEPOINT_LIMIT = 3000;

export const unalignedFromAlignedSavepoint: Scenario = {
  name: 'unaligned-from-aligned-savepoint',
  summary:
    'an ALIGNED job of the pipeline stops with a savepoint; an UNALIGNED job started from it reads its pieces ' +
    '(no in_flight_records marker) as plain state: every task restores exactly the savepoint cut, and once the ' +
    'sources end the sink holds every record exactly once',
  async run(s) {
    await s.startCoordinators(1);
    // The ALIGNED job runs until every task committed twice, then stops with a savepoint.
    const source = await s.submitOther(
      'aligned',
      pipeline({ mode: 'CHECKPOINT_MODE_ALIGNED', rate: 500, limit: FROM_SAVEPOINT_LIMIT }),
    );
    const workers = Object.entries(PIPELINE_WORKERS).map(([label, ids]) =>
      s.worker(`${label}-aligned`, ids, { other: source }),
    );
    const tasks = Object.keys(source.job.tasks);
    await s.waitFor(`2 committed reports of every task of ${source.jobId}`, 30_000, () =>
      tasks.every((id) => source.reports.filter((r) => r.task === id && r.event === 'committed').length >= 2),
    );
    const stopped = await s.retry(
      () => s.client.triggerSavepoint({ jobId: source.jobId, stop: true }, { deadlineMs: 30_000 }),
      'TriggerSavepoint',
    );
    const checkpointId = stopped.savepoint?.ref?.checkpointId ?? 0;
    if (stopped.checkpoint?.state !== 'CHECKPOINT_STATE_COMPLETED' || checkpointId === 0) {
      throw new ScenarioFailure(
        `the savepoint of ${source.jobId} was not taken: ${stopped.checkpoint?.state} ` +
          `(${stopped.checkpoint?.abortReason}: ${stopped.checkpoint?.abortMessage})`,
      );
    }
    // The job is canceled: its workers exit, and are not started again.
    await Promise.all(workers.map((w) => w.stop()));
    await s.verifyOther(source);

    // The UNALIGNED job starts from it. Its restored reports must be the cut's exactly: an ALIGNED savepoint
    // holds no in-flight records (the core check allows less for an UNALIGNED job's snapshots).
    await s.submit(pipeline({ mode: 'CHECKPOINT_MODE_UNALIGNED', rate: 1000, limit: FROM_SAVEPOINT_LIMIT }), {
      jobId: source.jobId,
      checkpointId,
    });
    for (const [label, ids] of Object.entries(PIPELINE_WORKERS)) s.worker(label, ids);
    await s.waitFor('the first epoch', 20_000, () => s.epoch > 0);
    const epoch = s.epochsSeen[0] ?? 1;
    await requireRestoredFrom(s, epoch, checkpointId);
    const manifest = await s.manifest(checkpointId);
    if (manifest === undefined) throw new ScenarioFailure(`no manifest of the savepoint ${checkpointId} in ${s.jobId}`);
    const want = expectedValues(s.graph, s.behaviours, offsetsOf(manifest));
    const wrong = (await s.waitRestored(epoch))
      .map((r) => ({ r, w: want.get(r.task) ?? { count: 0, sum: 0 } }))
      .filter(({ r, w }) => r.count !== w.count || r.sum !== w.sum)
      .map(({ r, w }) => `${r.task} restored count ${r.count} sum ${r.sum}, the savepoint holds ${w.count}, ${w.sum}`);
    if (wrong.length > 0) throw new ScenarioFailure(wrong.join('; '));
    if (s.epochsSeen.length > 1) {
      throw new ScenarioFailure(
        `the job recovered after its start from the savepoint (epochs ${s.epochsSeen.join(' -> ')})`,
      );
    }
    await waitExactTotals(s, 60_000, FROM_SAVEPOINT_LIMIT);
  },
};
