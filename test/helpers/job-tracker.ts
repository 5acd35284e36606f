/**
 * A job's tracker as the coordinator holds it for a running job, for unit
 * tests of the coordinator's logic: epoch 1, no checkpoint yet, its tasks
 * restoring, and a block of ids reserved.
 */
import { JobTracker } from '../../src/core/job-tracker.js';
import { validateJobSpec } from '../../src/core/validate.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';

type TrackerInit = ConstructorParameters<typeof JobTracker>[0];

/** The job `j`: a source `src` and a sink `sink` reading it. */
export const SOURCE_AND_SINK: JobSpec = {
  jobId: 'j',
  tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }],
};

/** A running job's tracker for `spec` (validated), with `init` in place of the defaults; ten ids reserved. */
export function runningTracker(
  spec: JobSpec = SOURCE_AND_SINK,
  init: Partial<Omit<TrackerInit, 'spec'>> = {},
): JobTracker {
  const tracker = new JobTracker({
    spec: validateJobSpec(spec),
    state: 'JOB_STATE_RUNNING',
    createdAtMs: 0,
    epoch: 1,
    latestCheckpointId: 0,
    idFloor: 1,
    retainedCheckpointIds: [],
    attempt: 'restoring',
    ...init,
  });
  tracker.ids.reserved(tracker.ids.floorToReserve(10));
  return tracker;
}
