/**
 * Job groups: how the jobs of one etcd prefix are spread over several
 * coordinator processes. There are K groups (`--job-groups`, fixed per
 * prefix); each group has its own leader election, and a job belongs to
 * group `fnv1a32(jobId) mod K`, the FNV-1a hash of the job id's UTF-8
 * bytes (the same hash as key groups, see `key-groups.ts`). A client in
 * any language computes the group the same way (PROTOCOL.md §13.1).
 */
import { CkptError } from './errors.js';
import { fnv1a32 } from './key-groups.js';

/** Default number of job groups: one election, one leader runs every job. */
export const DEFAULT_JOB_GROUPS = 1;
/** Most job groups a prefix may have: each costs every coordinator one election (a lease, a watch). */
export const MAX_JOB_GROUPS = 256;

/** The group in `[0, groups)` of the job `jobId`. */
export function jobGroupOf(jobId: string, groups: number): number {
  if (!Number.isSafeInteger(groups) || groups < 1) {
    throw new CkptError('MALFORMED', `job groups must be a positive integer, got ${groups}`);
  }
  return groups === 1 ? 0 : fnv1a32(jobId) % groups;
}

/**
 * How many groups one of `members` coordinators should lead at most when
 * they share `groups` evenly: `ceil(groups / members)`, and every group
 * when no other member is known.
 */
export function fairShareOfGroups(groups: number, members: number): number {
  return Math.ceil(groups / Math.max(1, members));
}

/**
 * Request metadata a coordinator sets when it asks another for the jobs of
 * one group only (the job list, the watch of every job): its value is the
 * group's number. Without it, a coordinator answers those calls for every
 * group, asking the other groups' leaders.
 */
export const JOB_GROUP_METADATA = 'ckpt-job-group';
