/**
 * The adaptive checkpoint interval: the pure choice (budget and replay
 * bounds, clamping, their conflict, no history, outliers), the policy's
 * validation of it, and the tracker's periodic schedule following it.
 */
import test from 'ava';
import { runningTracker } from '../helpers/job-tracker.js';
import {
  AdaptiveInterval,
  chooseInterval,
  DURATION_WINDOW,
  median,
  type AdaptiveBounds,
} from '../../src/core/adaptive-interval.js';
import { CkptError } from '../../src/core/errors.js';
import { DEFAULT_BUDGET_PERMILLE, resolvePolicy } from '../../src/core/policy.js';
import { validateJobSpec } from '../../src/core/validate.js';
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';

const BOUNDS: AdaptiveBounds = {
  minIntervalMs: 1000,
  maxIntervalMs: 120_000,
  budgetPermille: 50,
  replayTargetMs: 60_000,
};

/** The MALFORMED message `fn` throws, or what it did instead. */
function malformed(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CkptError && err.reason === 'MALFORMED' ? err.message : `not MALFORMED: ${String(err)}`;
  }
  return 'no error';
}

test('median: odd and even counts, order does not matter', (t) => {
  t.is(median([5, 1, 3]), 3);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.true(Number.isNaN(median([])));
});

test('without adaptive bounds the interval is the policy one', (t) => {
  t.deepEqual(chooseInterval(30_000, null, 5000), { intervalMs: 30_000, reason: 'fixed by policy' });
  t.deepEqual(chooseInterval(0, null, undefined), { intervalMs: 0, reason: 'periodic checkpoints off by policy' });
});

test('before any checkpoint completed the base interval is used, clamped into the bounds', (t) => {
  t.deepEqual(chooseInterval(30_000, BOUNDS, undefined), {
    intervalMs: 30_000,
    reason: 'no checkpoint completed yet: base interval 30000 ms',
  });
  t.deepEqual(chooseInterval(500, BOUNDS, undefined), {
    intervalMs: 1000,
    reason: 'no checkpoint completed yet: base interval 500 ms; clamped to min 1000 ms',
  });
  t.is(chooseInterval(200_000, BOUNDS, undefined).intervalMs, 120_000);
});

test('the budget sets the least interval: checkpoints of d ms need d / budget', (t) => {
  t.deepEqual(chooseInterval(10_000, BOUNDS, 820), {
    intervalMs: 16_400,
    reason: 'checkpoints take 820 ms; 5% budget needs at least 16400 ms',
  });
  t.is(chooseInterval(10_000, { ...BOUNDS, budgetPermille: 25 }, 820).reason.includes('2.5% budget'), true);
});

test('the replay target sets the most interval: target minus d', (t) => {
  t.deepEqual(chooseInterval(100_000, BOUNDS, 820), {
    intervalMs: 59_180,
    reason: 'checkpoints take 820 ms; replay target 60000 ms allows at most 59180 ms',
  });
});

test('a base interval between both bounds is kept, and the reason names them', (t) => {
  const choice = chooseInterval(30_000, BOUNDS, 820);
  t.is(choice.intervalMs, 30_000);
  t.is(
    choice.reason,
    'checkpoints take 820 ms; base interval 30000 ms kept: 5% budget needs at least 16400 ms and replay target 60000 ms allows at most 59180 ms',
  );
  t.is(chooseInterval(30_000, { ...BOUNDS, replayTargetMs: 0 }, 820).reason.includes('replay'), false);
});

test('when budget and replay target conflict the budget wins and says why', (t) => {
  const choice = chooseInterval(30_000, BOUNDS, 4000);
  t.is(choice.intervalMs, 80_000);
  t.regex(choice.reason, /5% budget needs at least 80000 ms, but replay target 60000 ms allows at most 56000 ms/);
  t.regex(choice.reason, /the budget wins, as checkpointing more often would starve the job/);
  // Checkpoints longer than the whole replay target: the budget still decides.
  const longer = chooseInterval(30_000, { ...BOUNDS, maxIntervalMs: 0 }, 70_000);
  t.is(longer.intervalMs, 1_400_000);
  t.regex(longer.reason, /allows at most 0 ms: the budget wins/);
});

test('min and max bound the result in every case, also against the budget', (t) => {
  t.deepEqual(chooseInterval(30_000, BOUNDS, 10_000), {
    intervalMs: 120_000,
    reason:
      'checkpoints take 10000 ms; 5% budget needs at least 200000 ms, but replay target 60000 ms allows at most 50000 ms: the budget wins, as checkpointing more often would starve the job; clamped to max 120000 ms',
  });
  t.deepEqual(chooseInterval(30_000, { ...BOUNDS, replayTargetMs: 1500 }, 1000), {
    intervalMs: 20_000,
    reason:
      'checkpoints take 1000 ms; 5% budget needs at least 20000 ms, but replay target 1500 ms allows at most 500 ms: the budget wins, as checkpointing more often would starve the job',
  });
  const low = chooseInterval(30_000, { ...BOUNDS, replayTargetMs: 300, budgetPermille: 1000 }, 150);
  t.deepEqual(low, {
    intervalMs: 1000,
    reason: 'checkpoints take 150 ms; replay target 300 ms allows at most 150 ms; clamped to min 1000 ms',
  });
});

test('the figure is the median of recent durations: one outlier does not move the interval', (t) => {
  const interval = new AdaptiveInterval(10_000, BOUNDS);
  t.is(interval.current.intervalMs, 10_000);
  for (const d of [800, 820, 840]) interval.completed(d);
  t.is(interval.current.intervalMs, 16_400);
  interval.completed(50_000);
  t.is(interval.current.intervalMs, 16_600, 'median of 800, 820, 840, 50000 is 830');
  interval.completed(810);
  t.is(interval.current.intervalMs, 16_400, 'median of five with one outlier is 820');
  t.regex(interval.current.reason, /^checkpoints take 820 ms/);
});

test('old durations leave the window: a lasting change shows within a few checkpoints', (t) => {
  const interval = new AdaptiveInterval(10_000, { ...BOUNDS, replayTargetMs: 0, maxIntervalMs: 0 });
  for (let i = 0; i < DURATION_WINDOW; i++) interval.completed(100);
  t.is(interval.current.intervalMs, 10_000);
  for (let i = 0; i < Math.ceil(DURATION_WINDOW / 2); i++) interval.completed(2000);
  t.is(interval.current.intervalMs, 40_000);
  interval.completed(-5);
  t.is(interval.current.intervalMs, 40_000, 'a negative duration counts as 0, a low outlier');
});

test('a fixed interval ignores durations', (t) => {
  const interval = new AdaptiveInterval(10_000, null);
  interval.completed(60_000);
  t.deepEqual(interval.current, { intervalMs: 10_000, reason: 'fixed by policy' });
});

test('policy: adaptive defaults are filled in and written back', (t) => {
  t.is(resolvePolicy({ intervalMs: 5000 }).adaptive, null);
  t.deepEqual(resolvePolicy({ intervalMs: 5000, adaptive: {} }).adaptive, {
    minIntervalMs: 10,
    maxIntervalMs: 0,
    budgetPermille: DEFAULT_BUDGET_PERMILLE,
    replayTargetMs: 0,
  });
  const adaptive = { minIntervalMs: 1000, maxIntervalMs: '120000', budgetPermille: 20, replayTargetMs: 60_000 };
  const spec = validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'x' }], policy: { intervalMs: 5000, adaptive } });
  t.deepEqual(spec.policy?.adaptive, { ...adaptive, maxIntervalMs: 120_000 });
  t.deepEqual(resolvePolicy(spec.policy).adaptive, spec.policy?.adaptive, 'a stored policy resolves to itself');
});

test('policy: bad adaptive values are MALFORMED naming the field, never altered', (t) => {
  const bad = (policy: CheckpointPolicy): string => malformed(() => resolvePolicy(policy, 3_600_000));
  t.regex(bad({ adaptive: {} }), /^MALFORMED: policy\.interval_ms must be above 0 with an adaptive interval/);
  t.regex(
    bad({ intervalMs: 1000, adaptive: { minIntervalMs: 5 } }),
    /^MALFORMED: policy\.adaptive\.min_interval_ms 5 must be/,
  );
  t.regex(
    bad({ intervalMs: 1000, adaptive: { minIntervalMs: 2000, maxIntervalMs: 1000 } }),
    /^MALFORMED: policy\.adaptive\.max_interval_ms 1000 must be 0 or at least min_interval_ms 2000/,
  );
  t.regex(
    bad({ intervalMs: 1000, adaptive: { budgetPermille: 1001 } }),
    /^MALFORMED: policy\.adaptive\.budget_permille 1001 must be an integer from 0 to 1000/,
  );
  t.regex(bad({ intervalMs: 1000, adaptive: { budgetPermille: -1 } }), /^MALFORMED: policy\.adaptive\.budget_permille/);
  t.regex(
    bad({ intervalMs: 1000, adaptive: { replayTargetMs: 3_600_001 } }),
    /^MALFORMED: policy\.adaptive\.replay_target_ms/,
  );
  t.regex(
    bad({ intervalMs: 1000, adaptive: { maxIntervalMs: 3_600_001 } }),
    /^MALFORMED: policy\.adaptive\.max_interval_ms/,
  );
  t.regex(
    bad({ intervalMs: 1000, adaptive: { minIntervalMs: 'soon' } }),
    /^MALFORMED: policy\.adaptive\.min_interval_ms/,
  );
  t.is(bad({ intervalMs: 1000, adaptive: { replayTargetMs: 3_600_000, maxIntervalMs: 3_600_000 } }), 'no error');
});

test('the tracker schedules by the adapted interval and reports it', (t) => {
  const adaptive = { minIntervalMs: 100, budgetPermille: 100 };
  const spec = validateJobSpec({
    jobId: 'j',
    tasks: [{ taskId: 'src' }],
    policy: { intervalMs: 1000, adaptive, tolerableFailures: -1 },
  });
  const j = runningTracker(spec);
  j.attach('w', ['src']);
  j.markReady('w', 1, ['src']);
  t.like(j.interval, { intervalMs: 1000, reason: 'no checkpoint completed yet: base interval 1000 ms' });
  const c = j.trigger(0, false);
  t.is(j.nextPeriodicDueAtMs(), undefined, 'one pending, max concurrent 1');
  j.acknowledge(
    { epoch: 1, checkpointId: c.id, workerId: 'w' },
    [{ taskId: 'src', state: null, positions: [], metrics: null, snapshotType: 'SNAPSHOT_TYPE_FULL' }],
    0,
  );
  c.beginCommit();
  j.complete(c, 300, 10, 0);
  t.like(j.interval, { intervalMs: 3000, reason: 'checkpoints take 300 ms; 10% budget needs at least 3000 ms' });
  t.is(j.nextPeriodicDueAtMs(), 3000);
  const aborted = j.trigger(3000, false);
  j.abort(aborted, 'ABORT_REASON_TIMEOUT', 'late', 9000);
  t.is(j.interval.intervalMs, 3000, 'aborted checkpoints do not count');
});
