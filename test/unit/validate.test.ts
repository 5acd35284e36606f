import test from 'ava';
import { CkptError } from '../../src/core/errors.js';
import { resolvePolicy } from '../../src/core/policy.js';
import { validateJobSpec } from '../../src/core/validate.js';
import { resolveConfig } from '../../src/config/index.js';

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CkptError ? err.message : String(err);
  }
  return 'no error';
}

test('a job spec is normalised: tasks sorted, policy defaults filled in', (t) => {
  const spec = validateJobSpec({ jobId: 'wc', tasks: [{ taskId: 'b', inputs: ['a'] }, { taskId: 'a' }] });
  t.deepEqual(
    spec.tasks.map((x) => x.taskId),
    ['a', 'b'],
  );
  t.is(spec.policy?.maxConcurrent, 1);
  t.is(spec.policy?.timeoutMs, 600_000);
  t.is(spec.policy?.retained, 1);
  t.is(spec.policy?.mode, 'CHECKPOINT_MODE_ALIGNED');
});

test('bad specs are refused with a reason naming the field', (t) => {
  t.regex(
    reason(() => validateJobSpec(undefined)),
    /^MALFORMED: spec is required/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'a b', tasks: [{ taskId: 'x' }] })),
    /MALFORMED: spec.job_id/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'j', tasks: [] })),
    /at least one task/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'x' }, { taskId: 'x' }] })),
    /appears twice/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'x', inputs: ['y'] }] })),
    /unknown task "y"/,
  );
  t.regex(
    reason(() =>
      validateJobSpec({
        jobId: 'j',
        tasks: [
          { taskId: 'x', inputs: ['y'] },
          { taskId: 'y', inputs: ['x'] },
        ],
      }),
    ),
    /cycle/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'x' }], policy: { timeoutMs: 1 } })),
    /policy.timeout_ms/,
  );
  t.regex(
    reason(() => validateJobSpec({ jobId: 'j', tasks: [{ taskId: 'x' }], labels: { k: 'v'.repeat(300) } })),
    /^OVERSIZED/,
  );
});

test('policy: 0 means default, ranges are enforced', (t) => {
  t.is(resolvePolicy({ tolerableFailures: -1 }).tolerableFailures, -1);
  t.regex(
    reason(() => resolvePolicy({ tolerableFailures: -2 })),
    /tolerable_failures/,
  );
  t.regex(
    reason(() => resolvePolicy({ retained: 1000 })),
    /retained/,
  );
  t.regex(
    reason(() => resolvePolicy({ intervalMs: 5 })),
    /interval_ms/,
  );
});

test('config: flags over environment over defaults; errors name the option', (t) => {
  const c = resolveConfig(
    { listen: '0.0.0.0:9000' },
    { CKPT_LISTEN: '1.2.3.4:1', CKPT_NATS: 'nats://a:1,nats://b:2', CKPT_HEARTBEAT_TIMEOUT_MS: '5000' },
  );
  t.is(c.listen, '0.0.0.0:9000');
  t.deepEqual(c.nats, ['nats://a:1', 'nats://b:2']);
  t.is(c.heartbeatTimeoutMs, 5000);
  t.is(c.etcdPrefix, '/ckpt/');
  t.regex(
    reason(() => resolveConfig({ heartbeatTimeoutMs: 'soon' }, {})),
    /heartbeatTimeoutMs \(CKPT_HEARTBEAT_TIMEOUT_MS\)/,
  );
  t.regex(
    reason(() => resolveConfig({ etcdPrefix: '/x' }, {})),
    /etcdPrefix/,
  );
  t.regex(
    reason(() => resolveConfig({ heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 500 }, {})),
    /larger than/,
  );
  t.regex(
    reason(() => resolveConfig({ logLevel: 'loud' }, {})),
    /logLevel/,
  );
});

test('aligned_checkpoint_timeout_ms: 0 by default, a duration in ALIGNED mode, refused in the other modes', (t) => {
  t.is(resolvePolicy({}).alignedCheckpointTimeoutMs, 0);
  t.is(resolvePolicy({ alignedCheckpointTimeoutMs: 250 }).alignedCheckpointTimeoutMs, 250);
  t.is(
    resolvePolicy({ mode: 'CHECKPOINT_MODE_ALIGNED', alignedCheckpointTimeoutMs: 250 }).alignedCheckpointTimeoutMs,
    250,
  );
  for (const mode of ['CHECKPOINT_MODE_UNALIGNED', 'CHECKPOINT_MODE_AT_LEAST_ONCE'] as const) {
    const err = t.throws(() => resolvePolicy({ mode, alignedCheckpointTimeoutMs: 250 }));
    t.regex(err?.message ?? '', /aligned_checkpoint_timeout_ms 250 must be 0 unless mode is CHECKPOINT_MODE_ALIGNED/);
  }
  t.throws(() => resolvePolicy({ alignedCheckpointTimeoutMs: -1 }), { message: /aligned_checkpoint_timeout_ms/ });
});
