/**
 * Judging hung tasks from their workers' reports, and the policy limits
 * that drive it.
 */
import test from 'ava';
import { CkptError } from '../../src/core/errors.js';
import { DEFAULT_TASK_STALL_TIMEOUT_MS, resolvePolicy } from '../../src/core/policy.js';
import { hungReason, silentTask } from '../../src/core/task-health.js';

const limits = { snapshotTimeoutMs: 500, taskStallTimeoutMs: 1000 };
const health = (busyMs: number, snapshotMs = 0) => ({ taskId: 't', busyMs, snapshotMs, snapshotCheckpointId: 7 });

test('a task is hung when a call or a snapshot outlasts its limit, not at the limit', (t) => {
  t.is(hungReason(limits, health(1000, 500)), undefined);
  t.is(
    hungReason(limits, health(1001)),
    'a call of its code has not returned for 1001 ms (task_stall_timeout_ms 1000)',
  );
  t.is(hungReason(limits, health(0, 501)), 'its snapshot of checkpoint 7 has run 501 ms (snapshot_timeout_ms 500)');
});

test('a task left out of a reporting worker’s heartbeats is hung after the stall timeout', (t) => {
  const reported = new Map([['a', 5000]]);
  t.is(silentTask(limits, ['a', 'b'], reported, 5000, 6000), undefined, 'b counts from when reports began');
  t.deepEqual(silentTask(limits, ['a', 'b'], reported, 5000, 6001), {
    taskId: 'a',
    why: 'its worker still heartbeats but has not reported it for 1001 ms (task_stall_timeout_ms 1000)',
  });
  t.is(silentTask(limits, ['a'], new Map([['a', 5500]]), 5000, 6001), undefined);
});

test('the snapshot limit defaults to the checkpoint timeout; the stall limit to a minute; both are checked', (t) => {
  const p = resolvePolicy({ timeoutMs: 30_000 });
  t.is(p.snapshotTimeoutMs, 30_000);
  t.is(p.taskStallTimeoutMs, DEFAULT_TASK_STALL_TIMEOUT_MS);
  t.is(resolvePolicy({ snapshotTimeoutMs: 200, taskStallTimeoutMs: 300 }).snapshotTimeoutMs, 200);
  const err = t.throws(() => resolvePolicy({ taskStallTimeoutMs: 5 }), { instanceOf: CkptError });
  t.regex(err.message, /task_stall_timeout_ms must be at least 10/);
});
