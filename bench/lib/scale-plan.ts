/**
 * What the scale scenario's processes share: how a floor answer names its
 * job and round, and its long deadlines.
 */

/** A floor answer's `seq` is `round × FLOOR_JOBS + the job's floor index`. */
export const FLOOR_JOBS = 1 << 16;

/**
 * Deadline of the calls of a job of 100,000 tasks (submit, trigger), and
 * attach timeout and acknowledgement deadline of its simulated workers
 * (their defaults are 10 s): its spec is megabytes, every welcome carries
 * it, and the coordinator takes the workers' hellos in turn.
 */
export const LONG_DEADLINE_MS = 120_000;
