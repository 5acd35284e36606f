import test from 'ava';
import { InputAligner, type AlignAction } from '../../src/sdk/index.js';

const rec = (record: string) => ({ kind: 'record' as const, record });
const bar = (checkpointId: number) => ({ kind: 'barrier' as const, checkpointId });

/** Every action the aligner can take now. */
function drain<R>(a: InputAligner<R>): AlignAction<R>[] {
  const out: AlignAction<R>[] = [];
  for (let action = a.next(); action !== undefined; action = a.next()) out.push(action);
  return out;
}

/**
 * Actions as short strings: `x` processes record x, `S1` snapshots 1, `F1`
 * finishes 1, `C1` cancels 1, `I1:x,y` takes queued records x and y in
 * flight for 1.
 */
function names(actions: AlignAction<string>[]): string[] {
  const letter = { snapshot: 'S', finish: 'F', cancel: 'C' } as const;
  return actions.map((a) => {
    if (a.kind === 'process') return a.record;
    if (a.kind === 'in-flight') return `I${a.checkpointId}:${a.records.join(',')}`;
    return `${letter[a.kind]}${a.checkpointId}`;
  });
}

test('aligned: records after barrier n on one input are held until barrier n arrives on every input', (t) => {
  let now = 1000;
  const a = new InputAligner<string>(['x', 'y'], 'aligned', () => now);
  a.offer('x', rec('x1'));
  a.offer('x', bar(1));
  a.offer('x', rec('x2'));
  a.offer('x', rec('x3'));
  a.offer('y', rec('y1'));
  t.deepEqual(names(drain(a)), ['x1', 'y1']);
  t.deepEqual(a.blockedInputs(), ['x']);
  t.is(a.queued, 2, 'x2 and x3 are held back');
  a.offer('y', rec('y2'));
  t.deepEqual(names(drain(a)), ['y2'], 'the other input goes on');
  now = 1040;
  a.offer('y', bar(1));
  a.offer('y', rec('y3'));
  const actions = drain(a);
  t.deepEqual(names(actions), ['S1', 'x2', 'y3', 'x3'], 'snapshot first, then the held records');
  t.like(actions[0], { kind: 'snapshot', checkpointId: 1, alignmentMs: 40, startedAtMs: 1000 });
  t.deepEqual(a.blockedInputs(), []);
});

test('aligned: a newer barrier among held records blocks its input again', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'aligned');
  for (const item of [bar(1), rec('x1'), bar(2), rec('x2')]) a.offer('x', item);
  t.deepEqual(names(drain(a)), []);
  a.offer('y', bar(1));
  t.deepEqual(names(drain(a)), ['S1', 'x1']);
  t.deepEqual(a.blockedInputs(), ['x']);
  a.offer('y', rec('y1'));
  a.offer('y', bar(2));
  t.deepEqual(names(drain(a)), ['y1', 'S2', 'x2']);
});

test('at-least-once: nothing is held back; the snapshot comes when the last barrier arrives', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'at-least-once');
  for (const item of [rec('x1'), bar(1), rec('x2')]) a.offer('x', item);
  t.deepEqual(names(drain(a)), ['x1', 'x2']);
  t.deepEqual(a.blockedInputs(), []);
  t.deepEqual(a.aligning(), [1]);
  a.offer('y', rec('y1'));
  a.offer('y', bar(1));
  t.deepEqual(names(drain(a)), ['y1', 'S1']);
  t.deepEqual(a.aligning(), []);
});

test('a single input snapshots at its barrier', (t) => {
  const a = new InputAligner<string>(['x'], 'aligned');
  for (const item of [rec('a'), bar(5), rec('b')]) a.offer('x', item);
  t.deepEqual(names(drain(a)), ['a', 'S5', 'b']);
});

test('an input that delivers a newer barrier without barrier n cancels n and releases the held input', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'aligned');
  a.offer('x', bar(1));
  a.offer('x', rec('x1'));
  a.offer('y', bar(2));
  const actions = drain(a);
  t.deepEqual(names(actions), ['C1', 'x1']);
  t.like(actions[0], { kind: 'cancel', checkpointId: 1 });
  t.deepEqual(a.blockedInputs(), ['y'], 'y now waits for barrier 2 on x');
  a.offer('x', bar(2));
  t.deepEqual(names(drain(a)), ['S2']);
});

test('an older barrier that the other inputs already passed is given up', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'aligned');
  a.offer('x', bar(2));
  a.offer('y', bar(1));
  a.offer('y', rec('y1'));
  t.deepEqual(names(drain(a)), ['C1', 'y1']);
  a.offer('y', bar(2));
  t.deepEqual(names(drain(a)), ['S2']);
});

test('an abort releases the inputs held for it and later barriers of it are ignored', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'aligned');
  a.offer('x', bar(3));
  a.offer('x', rec('x1'));
  t.deepEqual(names(drain(a)), []);
  a.cancel(3);
  t.deepEqual(names(drain(a)), ['x1']);
  a.offer('y', bar(3));
  a.offer('y', rec('y1'));
  t.deepEqual(names(drain(a)), ['y1']);
  t.deepEqual(a.blockedInputs(), []);
});

test('an abort up to an id cancels every older alignment; reset drops everything', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'at-least-once');
  a.offer('x', bar(1));
  a.offer('x', bar(2));
  drain(a);
  t.deepEqual(a.aligning(), [1, 2]);
  a.cancel(2, true);
  t.deepEqual(a.aligning(), []);
  a.offer('x', rec('late'));
  a.reset();
  t.is(a.queued, 0);
  t.deepEqual(names(drain(a)), []);
});

test('records of an unknown input are refused', (t) => {
  const a = new InputAligner<string>(['x'], 'aligned');
  t.false(a.offer('z', rec('z1')));
  t.is(a.queued, 0);
});

test('unaligned: the snapshot comes at the first barrier, ahead of queued records, which are in flight, and finishes when the last barrier is offered', (t) => {
  let now = 0;
  const a = new InputAligner<string>(['x', 'y'], 'unaligned', () => now);
  a.offer('x', rec('x1'));
  a.offer('y', rec('y1'));
  t.deepEqual(names([a.next()].filter((x) => x !== undefined)), ['x1'], 'x1 processed before any barrier');
  a.offer('x', rec('x2'));
  a.offer('x', bar(1));
  a.offer('x', rec('x3'));
  const actions = drain(a);
  t.deepEqual(names(actions), ['S1', 'I1:x2', 'y1', 'x2', 'x3']);
  t.like(actions[0], { kind: 'snapshot', checkpointId: 1, startedAtMs: 0 }, 'started when barrier 1 was offered');
  t.deepEqual(
    actions.map((x) => (x.kind === 'process' ? (x.inFlightFor ?? []) : [])),
    [[], [], [1], [], []],
    'x2 was queued ahead of barrier 1 (taken in flight at once), y1 is taken before its input delivered barrier 1; x3 came after',
  );
  t.deepEqual(a.blockedInputs(), [], 'nothing is held back');
  a.offer('y', rec('y2'));
  now = 25;
  a.offer('y', bar(1));
  a.offer('y', rec('y3'));
  // Barrier 1 was offered on every input: the checkpoint finishes before y2, queued ahead of it, is processed.
  const control = [a.nextControl(), a.nextControl()].filter((x) => x !== undefined);
  t.deepEqual(names(control), ['I1:y2', 'F1']);
  t.like(control[1], { kind: 'finish', checkpointId: 1, alignmentMs: 25 });
  const rest = drain(a);
  t.deepEqual(names(rest), ['y2', 'y3']);
  t.deepEqual(
    rest.map((x) => (x as { inFlightFor?: number[] }).inFlightFor),
    [undefined, undefined],
  );
});

test('unaligned: an abort drops a queued snapshot and its recording', (t) => {
  const a = new InputAligner<string>(['x', 'y'], 'unaligned');
  a.offer('x', bar(4));
  a.offer('y', rec('y1'));
  a.cancel(4);
  t.deepEqual(names(drain(a)), ['y1']);
  a.offer('y', bar(4));
  t.deepEqual(names(drain(a)), []);
  a.offer('x', bar(5));
  a.offer('y', bar(5));
  t.deepEqual(names(drain(a)), ['S5', 'F5']);
});
