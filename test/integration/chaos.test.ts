/**
 * The fault suite, short: the word count on a 3-member etcd cluster, NATS
 * and three coordinators while a seeded schedule of faults hits the
 * workers, the coordinators, etcd members, NATS and the links between them;
 * afterwards the output must be exactly-once and etcd's history sound.
 * `make chaos` runs the long variant.
 */
import test from 'ava';
import { FAULT_KINDS } from '../chaos/options.js';
import { runChaos } from '../chaos/run.js';
import { formatSummary } from '../chaos/summary.js';

test('the word count stays exactly-once and etcd stays sound through 10 seeded faults', async (t) => {
  t.timeout(170_000);
  const report = await runChaos({
    seed: 7,
    faults: 10,
    // Every kind: processes killed and paused, etcd members killed, NATS restarted, links cut.
    kinds: FAULT_KINDS,
    coordinators: 3,
    spacingMs: 4_000,
    sentencesPerSecond: 80,
    settleTimeoutMs: 40_000,
    log: (line) => t.log(line),
  });
  for (const line of formatSummary(report)) t.log(line);
  t.is(report.faults.length, 10);
  t.true(report.recoveries >= 1, 'the faults caused at least one recovery');
  t.true(report.committed >= 3, 'checkpoints were committed while faults ran');
  t.true(report.exactlyOnce.ok);
  t.deepEqual(report.violations, []);
});
