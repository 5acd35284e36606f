import test from 'ava';
import { partitionIndex } from '../../src/core/key-groups.js';
import type { Manifest__Output as Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { Behaviour, Report } from '../conformance/behaviours.js';
import { parseReport, parseTasks } from '../conformance/behaviours.js';
import { expectedValues, residueTotals } from '../conformance/expected.js';
import { verifyReports } from '../conformance/verify.js';

/** The same values computed record by record, as a worker would count them. */
function byRecords(offsets: Map<string, number>, keys: number): Map<string, { count: number; sum: number }> {
  const sums = new Map<string, Map<string, number>>([
    ['sum-0', new Map()],
    ['sum-1', new Map()],
  ]);
  const sink = { count: 0, sum: 0 };
  for (const [, offset] of offsets) {
    for (let n = 1; n <= offset; n++) {
      const key = String(n % keys);
      const to = ['sum-0', 'sum-1'][partitionIndex(key, 2)] as string;
      const state = sums.get(to) as Map<string, number>;
      state.set(key, (state.get(key) ?? 0) + n);
      sink.count += 1;
      sink.sum += n;
    }
  }
  const values = (m: Map<string, number>) => ({ count: m.size, sum: [...m.values()].reduce((a, b) => a + b, 0) });
  return new Map([
    ['sum-0', values(sums.get('sum-0') as Map<string, number>)],
    ['sum-1', values(sums.get('sum-1') as Map<string, number>)],
    ['sink', sink],
  ]);
}

test('residueTotals counts the n up to an offset with a given residue', (t) => {
  t.deepEqual(residueTotals(10, 4, 0), { count: 2, sum: 4 + 8 });
  t.deepEqual(residueTotals(10, 4, 1), { count: 3, sum: 1 + 5 + 9 });
  t.deepEqual(residueTotals(2, 4, 3), { count: 0, sum: 0 });
  t.deepEqual(residueTotals(0, 4, 0), { count: 0, sum: 0 });
});

test('expectedValues equals counting every record through the pipeline', (t) => {
  const keys = 64;
  const source: Behaviour = { kind: 'source', rate: 0, limit: 0, keys };
  const behaviours = new Map<string, Behaviour>([
    ['src-0', source],
    ['src-1', source],
    ['sum-0', { kind: 'sum' }],
    ['sum-1', { kind: 'sum' }],
    ['sink', { kind: 'sink' }],
  ]);
  const graph = [
    { taskId: 'src-0', inputs: [] },
    { taskId: 'src-1', inputs: [] },
    { taskId: 'sum-0', inputs: ['src-0', 'src-1'] },
    { taskId: 'sum-1', inputs: ['src-0', 'src-1'] },
    { taskId: 'sink', inputs: ['sum-0', 'sum-1'] },
  ];
  for (const [a, b] of [
    [0, 0],
    [1, 0],
    [63, 64],
    [1000, 2345],
  ] as const) {
    const offsets = new Map([
      ['src-0', a],
      ['src-1', b],
    ]);
    const expected = expectedValues(graph, behaviours, offsets);
    const counted = byRecords(offsets, keys);
    for (const task of ['sum-0', 'sum-1', 'sink'])
      t.deepEqual(expected.get(task), counted.get(task), `${task} at ${a}/${b}`);
    t.deepEqual(expected.get('src-1'), { count: b, sum: b });
  }
});

test('parseTasks applies defaults and names what is wrong', (t) => {
  const tasks = parseTasks('{"a":{"kind":"source"},"b":{"kind":"sink","declineCheckpoint":3}}');
  t.deepEqual(tasks.get('a'), { kind: 'source', rate: 2000, limit: 0, keys: 16 });
  t.deepEqual(tasks.get('b'), { kind: 'sink', declineCheckpoint: 3 });
  t.throws(() => parseTasks('{"a":{"kind":"map"}}'), { message: /CKPT_TASKS\.a\.kind/ });
  t.throws(() => parseTasks('{"a":{"kind":"source","rate":-1}}'), { message: /CKPT_TASKS\.a\.rate/ });
  t.throws(() => parseTasks('[1]'), { message: /JSON object/ });
  t.throws(() => parseTasks('{'), { message: /not JSON/ });
});

test('parseReport accepts reports and refuses anything else', (t) => {
  const report = { task: 'x', event: 'committed', epoch: 1, checkpoint: 2, count: 3, sum: 4 };
  t.deepEqual(parseReport(JSON.stringify(report)), report);
  t.is(parseReport('{"task":"x","event":"other","epoch":1,"checkpoint":2,"count":3,"sum":4}'), undefined);
  t.is(parseReport('{"task":"x","event":"restored","epoch":-1,"checkpoint":2,"count":3,"sum":4}'), undefined);
  t.is(parseReport('nope'), undefined);
});

test('verifyReports names each report that differs from its cut', async (t) => {
  const behaviours = new Map<string, Behaviour>([
    ['src', { kind: 'source', rate: 0, limit: 0, keys: 4 }],
    ['sink', { kind: 'sink' }],
  ]);
  const graph = [
    { taskId: 'src', inputs: [] },
    { taskId: 'sink', inputs: ['src'] },
  ];
  const manifest = {
    jobId: 'j',
    checkpointId: 5,
    epoch: 2,
    tasks: [
      { taskId: 'src', positions: [{ input: 'counter', offset: 10 }] },
      { taskId: 'sink', positions: [] },
    ],
  } as unknown as Manifest;
  const verify = (reports: Report[]) =>
    verifyReports({
      graph,
      behaviours,
      unaligned: false,
      reports,
      manifest: (id) => Promise.resolve(id === 5 ? manifest : undefined),
    });
  const good: Report[] = [
    { task: 'src', event: 'restored', epoch: 2, checkpoint: 0, count: 0, sum: 0 },
    { task: 'src', event: 'committed', epoch: 2, checkpoint: 5, count: 10, sum: 10 },
    { task: 'sink', event: 'committed', epoch: 2, checkpoint: 5, count: 10, sum: 55 },
    { task: 'sink', event: 'restored', epoch: 3, checkpoint: 5, count: 10, sum: 55 },
  ];
  t.deepEqual(await verify(good), []);
  const problems = await verify([
    { task: 'sink', event: 'committed', epoch: 2, checkpoint: 5, count: 11, sum: 55 },
    { task: 'sink', event: 'committed', epoch: 2, checkpoint: 5, count: 10, sum: 55 },
    { task: 'src', event: 'committed', epoch: 1, checkpoint: 5, count: 10, sum: 10 },
    { task: 'src', event: 'committed', epoch: 2, checkpoint: 6, count: 10, sum: 10 },
    { task: 'sink', event: 'restored', epoch: 2, checkpoint: 5, count: 10, sum: 55 },
  ]);
  t.regex(problems[0] ?? '', /sink for checkpoint 5.*count 11 sum 55, expected count 10 sum 55/);
  t.regex(problems[1] ?? '', /after a committed report of checkpoint 5/);
  t.regex(problems[2] ?? '', /committed in epoch 2/);
  t.regex(problems[3] ?? '', /no committed manifest of checkpoint 6/);
  t.regex(problems[4] ?? '', /later epoch/);
});
