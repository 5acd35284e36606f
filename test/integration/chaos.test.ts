/**
 * The fault suite, short: the word count on a 3-member etcd cluster, NATS
 * and a coordinator while a seeded schedule of faults hits the workers, the
 * coordinator, etcd members and the links to etcd; afterwards the output
 * must be exactly-once and etcd's history sound. `make chaos` runs the long
 * variant with every kind of fault.
 */
import test from 'ava';
import { type FaultKind } from '../chaos/options.js';
import { runChaos } from '../chaos/run.js';
import { formatSummary } from '../chaos/summary.js';

/**
 * The kinds this test draws from. NATS restarts and cut NATS links are left
 * out: records travel between tasks on core NATS subjects, and those in
 * flight when a connection drops are lost without a recovery, so the output
 * comes out short (run `make chaos FAULT_KINDS=restart-nats,cut-nats` to see
 * it). Add them here once a worker that loses its NATS connection makes its
 * job recover.
 */
const KINDS: readonly FaultKind[] = [
  'kill-worker',
  'pause-worker',
  'kill-coordinator',
  'pause-coordinator',
  'kill-etcd',
  'cut-etcd',
];

test('the word count stays exactly-once and etcd stays sound through 10 seeded faults', async (t) => {
  t.timeout(170_000);
  const report = await runChaos({
    seed: 7,
    faults: 10,
    kinds: KINDS,
    // Until standbys answer NOT_LEADER, one coordinator: a coordinator fault restarts it.
    coordinators: 1,
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
