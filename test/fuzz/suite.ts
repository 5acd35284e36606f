/**
 * Registers one serial ava test per target, all against one fuzz
 * environment (one etcd, one NATS, a coordinator child) per test file.
 * Each test logs its counts (and appends them as a JSON line to
 * `CKPT_FUZZ_REPORT` when set), fails with fast-check's shrunk
 * counterexample, and ends by checking that `main` still commits.
 */
import { appendFileSync } from 'node:fs';
import test from 'ava';
import { useServers } from '../helpers/index.js';
import { JOBS } from './fixture.js';
import { FuzzEnv, fuzzOptions } from './fuzz-env.js';
import { fuzzTarget } from './runner.js';
import { READ_ONLY_TARGETS, type Target } from './targets.js';

/** Time a test may take per generated message, on top of a fixed allowance and the shrinking budget. */
const MS_PER_MESSAGE = 100;

/** Declares the tests of `targets` in the calling test file. */
export function fuzzSuite(targets: readonly Target[]): void {
  const servers = useServers();
  const options = fuzzOptions();
  let env: FuzzEnv | undefined;
  let previous: string | undefined;
  test.after.always(async () => {
    await env?.stop();
  });
  for (const target of targets) {
    test.serial(`fuzz ${target.name}`, async (t) => {
      t.timeout(120_000 + options.n * MS_PER_MESSAGE + options.shrinkMs);
      env ??= new FuzzEnv(servers, options);
      // A target starts from a fresh fixture, so that its seed replays it alone, unless
      // the one before only read (and the end-of-target commit check).
      if (previous === undefined || !READ_ONLY_TARGETS.has(previous)) env.markDirty();
      previous = target.name;
      const run = await fuzzTarget(env, target);
      t.log(run.tally.summary());
      const report = process.env.CKPT_FUZZ_REPORT;
      if (report)
        appendFileSync(report, JSON.stringify({ ...run.tally.toJSON(), failure: run.failure ?? null }) + '\n');
      if (run.failure !== undefined) {
        t.fail(run.failure);
        return;
      }
      const fx = await env.fixture();
      await fx.settle();
      const done = await fx.client.triggerCheckpoint({ jobId: JOBS.main, wait: true }, { deadlineMs: 10_000 });
      t.is(done.checkpoint?.state, 'CHECKPOINT_STATE_COMPLETED', 'main still commits checkpoints');
      await fx.settle();
      env.forgetBaseline();
    });
  }
}
