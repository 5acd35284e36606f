/**
 * The number of job groups is fixed per etcd prefix: the coordinators of a
 * prefix must agree on it, since a job's group (`jobGroupOf`) decides which
 * election's leader runs it. The first coordinator records its number at
 * `<prefix>config/job-groups` (created in a transaction if absent); every
 * later one reads it and refuses to start with another. A coordinator of a
 * version that predates the record does not check it: upgrade every
 * coordinator of a prefix before changing the number of groups.
 *
 * To change the number: stop every coordinator of the prefix, delete the
 * key, start them with the new number.
 */
import type { Etcd3 } from 'etcd3';
import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelayMs } from '../core/backoff.js';
import { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import { callEtcd } from '../store/index.js';
import { ELECTION_RETRY } from './election.js';

/** Where the number of job groups of `prefix` is recorded. */
export function jobGroupsKey(prefix: string): string {
  return `${prefix}config/job-groups`;
}

/**
 * Records `groups` under `prefix` unless a number is recorded already, and
 * returns the number recorded. Throws the translated etcd error when etcd
 * cannot be reached or refuses.
 */
export async function recordJobGroups(client: Etcd3, prefix: string, groups: number): Promise<number> {
  const key = jobGroupsKey(prefix);
  const result = await callEtcd({ operation: 'record the number of job groups' }, () =>
    client
      .if(key, 'Create', '==', 0)
      .then(client.put(key).value(String(groups)))
      .else(client.get(key))
      .commit(),
  );
  if (result.succeeded) return groups;
  const stored = result.responses[0]?.response_range.kvs[0]?.value.toString() ?? '';
  const n = /^\d{1,4}$/.test(stored) ? Number(stored) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new CkptError(
      'INTERNAL',
      `${key} holds ${JSON.stringify(stored.slice(0, 64))}, not a number of job groups: ` +
        'stop every coordinator of the prefix, delete the key and start them again',
    );
  }
  return n;
}

/** The refusal of a coordinator whose number of job groups is not the prefix's. */
export function jobGroupsMismatch(prefix: string, configured: number, recorded: number): CkptError {
  return new CkptError(
    'MALFORMED',
    `option jobGroups (--job-groups, CKPT_JOB_GROUPS) is ${configured}, but the coordinators of etcd prefix ` +
      `${prefix} run ${recorded} job groups (${jobGroupsKey(prefix)}): start this coordinator with ` +
      `--job-groups ${recorded}, or stop every coordinator of the prefix, delete that key and start them all ` +
      `with the new number`,
  );
}

/**
 * Checks that the prefix runs `groups` job groups, recording the number
 * when none is. Retries while etcd is unreachable, with backoff, until
 * `signal` aborts; throws the mismatch (never retried) or, once aborted,
 * SHUTTING_DOWN.
 */
export async function checkJobGroups(
  client: Etcd3,
  prefix: string,
  groups: number,
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    if (signal.aborted) throw new CkptError('SHUTTING_DOWN', 'the coordinator stopped before it could start');
    let recorded: number;
    try {
      recorded = await recordJobGroups(client, prefix, groups);
    } catch (err) {
      const error = CkptError.from(err);
      if (!error.retryable) throw error;
      logger.debug({ err: error }, 'number of job groups not checked; trying again');
      await delay(backoffDelayMs(ELECTION_RETRY, attempt), undefined, { signal }).catch(() => undefined);
      continue;
    }
    if (recorded !== groups) throw jobGroupsMismatch(prefix, groups, recorded);
    return;
  }
}
