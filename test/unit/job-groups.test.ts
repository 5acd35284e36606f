/**
 * The job group of a job id, as PROTOCOL.md §13.1 gives it for clients in
 * other languages, and the fair share a coordinator leads.
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { fairShareOfGroups, jobGroupOf } from '../../src/core/job-groups.js';

test('a job group is fnv1a32 of the job id mod K, as the protocol document says', (t) => {
  const vectors: Array<[string, number]> = [
    ['job-0', 1],
    ['job-1', 2],
    ['job-2', 0],
    ['wordcount', 2],
  ];
  const doc = readFileSync(new URL('../../proto/PROTOCOL.md', import.meta.url), 'utf8');
  for (const [jobId, group] of vectors) {
    t.is(jobGroupOf(jobId, 3), group, jobId);
    t.true(doc.includes(`\`${jobId}\` → ${group}`), `PROTOCOL.md names ${jobId} → ${group}`);
  }
  t.is(jobGroupOf('anything', 1), 0);
  t.is(jobGroupOf('zürich', 7), jobGroupOf('zürich', 7));
  t.throws(() => jobGroupOf('job', 0), { message: /positive integer/ });
});

test('the fair share of groups is ceil(K / members), every group without other members', (t) => {
  t.is(fairShareOfGroups(3, 3), 1);
  t.is(fairShareOfGroups(3, 2), 2);
  t.is(fairShareOfGroups(4, 3), 2);
  t.is(fairShareOfGroups(3, 0), 3);
});
