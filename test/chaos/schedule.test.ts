/**
 * The seeded fault schedule and the suite's options: pure functions, no servers.
 */
import test from 'ava';
import { FAULT_KINDS, resolveChaosOptions, stateCleanupInForce } from './options.js';
import { drawSchedule, type ScheduleInput } from './schedule.js';

const input: ScheduleInput = {
  seed: 1,
  faults: 200,
  kinds: FAULT_KINDS,
  spacingMs: 4000,
  coordinators: 1,
  workers: 3,
  etcdMembers: 3,
  natsServers: 1,
  heartbeatTimeoutMs: 3000,
  leaderLeaseMs: 5000,
};

test('one seed draws one schedule; another seed another', (t) => {
  t.deepEqual(drawSchedule(input), drawSchedule(input));
  t.notDeepEqual(drawSchedule(input), drawSchedule({ ...input, seed: 2 }));
});

test('each fault starts in the first half of its own slot, and every kind is drawn', (t) => {
  const schedule = drawSchedule(input);
  t.is(schedule.length, 200);
  schedule.forEach((f, i) => {
    t.is(f.n, i + 1);
    t.true(f.atMs >= i * input.spacingMs && f.atMs <= i * input.spacingMs + input.spacingMs / 2);
  });
  t.deepEqual([...new Set(schedule.map((f) => f.kind))].sort(), [...FAULT_KINDS].sort());
});

test('only the kinds asked for are drawn, with targets in range', (t) => {
  const schedule = drawSchedule({ ...input, kinds: ['kill-worker', 'kill-etcd'] });
  for (const f of schedule) {
    if (f.kind === 'kill-worker') t.true(f.worker >= 0 && f.worker < 3);
    else if (f.kind === 'kill-etcd') t.true(f.member >= 0 && f.member < 3);
    else t.fail(`unexpected kind ${f.kind}`);
  }
});

test('pauses outlast the timeout that notices them; with standbys a leader pause outlasts the lease', (t) => {
  for (const f of drawSchedule(input)) {
    if (f.kind === 'pause-worker') t.true(f.holdMs > input.heartbeatTimeoutMs);
    if (f.kind === 'pause-coordinator') t.true(f.holdMs > input.heartbeatTimeoutMs);
  }
  for (const f of drawSchedule({ ...input, coordinators: 3 })) {
    if (f.kind === 'pause-coordinator') t.true(f.holdMs > input.leaderLeaseMs);
    if (f.kind === 'cut-etcd' && f.scope.to === 'leader-etcd') t.true(f.holdMs > input.leaderLeaseMs);
  }
});

test('options are validated with the option named', (t) => {
  t.throws(() => resolveChaosOptions({ coordinators: 0 }), { message: /option coordinators/ });
  t.throws(() => resolveChaosOptions({ kinds: ['nope' as 'kill-worker'] }), {
    message: /option kinds: unknown fault kind "nope"/,
  });
  t.throws(() => resolveChaosOptions({ etcdPrefix: 'x' }), { message: /option etcdPrefix/ });
  t.is(resolveChaosOptions().coordinators, 3);
});

test('the state cleanup in force is the options unless the coordinator flags set it, the last flag winning', (t) => {
  t.deepEqual(stateCleanupInForce(resolveChaosOptions({ orphanGraceMs: 3000 })), {
    orphanGraceMs: 3000,
    stateSweepIntervalMs: 2000,
  });
  const args = ['--orphan-grace-ms', '600000', '--log-level', 'debug', '--orphan-grace-ms=700000'];
  t.deepEqual(
    stateCleanupInForce(resolveChaosOptions({ coordinatorArgs: [...args, '--state-sweep-interval-ms', '9'] })),
    {
      orphanGraceMs: 700_000,
      stateSweepIntervalMs: 9,
    },
  );
  t.is(stateCleanupInForce(resolveChaosOptions({ coordinatorArgs: ['--orphan-grace-ms'] })).orphanGraceMs, 2000);
});
