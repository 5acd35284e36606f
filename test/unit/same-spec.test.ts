/**
 * `sameSpec` agrees with `isDeepStrictEqual` on specs, and a stored spec is
 * checked once per spec object.
 */
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import { validateJobSpec } from '../../src/core/validate.js';
import { sameSpec, specProblem } from '../../src/store/job-checks.js';

type JobSpec = Parameters<typeof sameSpec>[0];

function spec(tasks: number): JobSpec {
  return validateJobSpec({
    jobId: 'job',
    tasks: Array.from({ length: tasks }, (_, i) => ({
      taskId: `t${i}`,
      inputs: i === 0 ? [] : [`t${i - 1}`],
      labels: Object.fromEntries(i % 3 === 0 ? [['op', `o${i}`]] : []),
    })),
    policy: { intervalMs: 1000 },
    labels: { team: 'a' },
  });
}

test('sameSpec agrees with a deep strict comparison', (t) => {
  const a = spec(50);
  const variants: Array<[string, (s: JobSpec) => JobSpec]> = [
    ['the same', (s) => structuredClone(s)],
    ['a task id', (s) => ({ ...s, tasks: s.tasks.map((x, i) => (i === 7 ? { ...x, taskId: 'other' } : x)) })],
    ['an input', (s) => ({ ...s, tasks: s.tasks.map((x, i) => (i === 7 ? { ...x, inputs: ['t0'] } : x)) })],
    ['a label', (s) => ({ ...s, tasks: s.tasks.map((x, i) => (i === 9 ? { ...x, labels: { op: 'x' } } : x)) })],
    [
      'a label more',
      (s) => ({ ...s, tasks: s.tasks.map((x, i) => (i === 9 ? { ...x, labels: { op: 'o9', b: '' } } : x)) }),
    ],
    ['an extra field', (s) => ({ ...s, tasks: s.tasks.map((x, i) => (i === 3 ? { ...x, extra: 1 } : x)) })],
    ['a task less', (s) => ({ ...s, tasks: s.tasks.slice(1) })],
    ['the policy', (s) => ({ ...s, policy: { ...s.policy!, intervalMs: 2000 } })],
    ['the job labels', (s) => ({ ...s, labels: {} })],
  ];
  for (const [what, change] of variants) {
    const b = change(structuredClone(a));
    t.is(sameSpec(a, b), isDeepStrictEqual(a, b), what);
  }
  t.true(sameSpec(a, structuredClone(a)));
});

test('a spec found right is not checked again; a wrong one is refused each time', (t) => {
  const good = spec(20);
  t.is(specProblem(good), undefined);
  t.is(specProblem(good), undefined);
  const unsorted = { ...good, tasks: [...good.tasks].reverse() };
  t.is(specProblem(unsorted), 'holds a spec that differs from its normalised form');
  t.is(specProblem(unsorted), 'holds a spec that differs from its normalised form');
  t.regex(specProblem({ ...good, tasks: [] }) ?? '', /invalid spec/);
});
