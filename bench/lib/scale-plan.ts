/**
 * What the scale scenario's processes share: how a floor answer names its
 * job and round.
 */

/** A floor answer's `seq` is `round × FLOOR_JOBS + the job's floor index`. */
export const FLOOR_JOBS = 1 << 16;
