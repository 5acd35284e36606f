import test from 'ava';
import { InputAligner, type AlignAction } from '../../src/sdk/index.js';

const rec = (record: string) => ({ kind: 'record' as const, record });
const bar = (checkpointId: number, savepoint = false) => ({ kind: 'barrier' as const, checkpointId, savepoint });

function drain<R>(a: InputAligner<R>): AlignAction<R>[] {
  const out: AlignAction<R>[] = [];
  for (let action = a.next(); action !== undefined; action = a.next()) out.push(action);
  return out;
}

/**
 * `x` processes record x (`x@1` also records it in flight for 1), `S1`
 * snapshots 1 aligned, `U1` snapshots 1 unaligned, `F1` finishes 1, `C1`
 * cancels 1, `I1:x,y` takes queued records x and y in flight for 1.
 */
function names(actions: AlignAction<string>[]): string[] {
  return actions.map((a) => {
    switch (a.kind) {
      case 'process':
        return a.inFlightFor === undefined ? a.record : `${a.record}@${a.inFlightFor.join('+')}`;
      case 'in-flight':
        return `I${a.checkpointId}:${a.records.join(',')}`;
      case 'snapshot':
        return `${a.unaligned ? 'U' : 'S'}${a.checkpointId}`;
      case 'finish':
        return `F${a.checkpointId}`;
      case 'cancel':
        return `C${a.checkpointId}`;
    }
  });
}

test('aligned with a timeout: a checkpoint that aligns in time is an aligned one', (t) => {
  let now = 1000;
  const a = new InputAligner<string>(['x', 'y'], 'aligned', () => now, 100);
  a.offer('x', bar(1));
  a.offer('x', rec('x1'));
  t.is(a.nextTimeout(), 1100);
  now = 1050;
  a.offer('y', bar(1));
  t.deepEqual(names(drain(a)), ['S1', 'x1']);
  t.is(a.nextTimeout(), undefined);
  now = 5000;
  t.deepEqual(names(drain(a)), [], 'nothing times out later');
});

test('aligned with a timeout: a barrier queued behind records times out into an unaligned snapshot', (t) => {
  let now = 1000;
  // One input (a sink behind a full window): its barrier waits behind the records queued ahead of it.
  const a = new InputAligner<string>(['x'], 'aligned', () => now, 100);
  for (const item of [rec('x1'), rec('x2'), rec('x3'), bar(1), rec('x4')]) a.offer('x', item);
  t.deepEqual(names([a.next() as AlignAction<string>]), ['x1'], 'one record taken before the timeout');
  now = 1100;
  const actions = drain(a);
  t.deepEqual(names(actions), ['U1', 'I1:x2,x3', 'F1', 'x2', 'x3', 'x4']);
  t.like(actions[0], { kind: 'snapshot', checkpointId: 1, startedAtMs: 1100, unaligned: true });
  t.is(a.queued, 0, 'the barrier was skipped when reached');
});

test('aligned with a timeout: the task snapshots when its output is full (nextControl)', (t) => {
  let now = 0;
  const a = new InputAligner<string>(['x'], 'aligned', () => now, 10);
  for (const item of [rec('x1'), bar(3), rec('x2')]) a.offer('x', item);
  t.is(a.nextControl(), undefined);
  now = 10;
  t.deepEqual(names([a.nextControl(), a.nextControl(), a.nextControl()] as AlignAction<string>[]), [
    'U3',
    'I3:x1',
    'F3',
  ]);
  t.deepEqual(names(drain(a)), ['x1', 'x2']);
});

test('aligned with a timeout: a held input is released and the missing input records in flight until its barrier', (t) => {
  let now = 0;
  const a = new InputAligner<string>(['x', 'y'], 'aligned', () => now, 50);
  a.offer('x', bar(1));
  a.offer('x', rec('x1'));
  a.offer('y', rec('y1'));
  t.deepEqual(names(drain(a)), ['y1']);
  t.deepEqual(a.blockedInputs(), ['x']);
  now = 60;
  a.offer('y', rec('y2'));
  t.deepEqual(names(drain(a)), ['U1', 'x1', 'y2@1'], 'x is released; y2 is in flight for 1');
  t.deepEqual(a.blockedInputs(), []);
  a.offer('y', rec('y3'));
  a.offer('y', rec('y4'));
  t.deepEqual(names([a.next() as AlignAction<string>]), ['y3@1']);
  now = 70;
  a.offer('y', bar(1));
  a.offer('y', rec('y5'));
  const actions = drain(a);
  t.deepEqual(names(actions), ['I1:y4', 'F1', 'y4', 'y5'], 'barrier 1 of y is taken when offered');
  t.like(actions[1], { kind: 'finish', checkpointId: 1, alignmentMs: 70 });
});

test('aligned with a timeout: a savepoint always aligns, and no later checkpoint times out before it', (t) => {
  let now = 0;
  const a = new InputAligner<string>(['x', 'y'], 'aligned', () => now, 10);
  a.offer('x', bar(1, true));
  a.offer('x', bar(2));
  a.offer('y', rec('y1'));
  now = 1000;
  t.deepEqual(names(drain(a)), ['y1']);
  t.is(a.nextTimeout(), undefined);
  a.offer('y', bar(1, true));
  t.deepEqual(names(drain(a)), ['S1', 'U2'], 'the savepoint aligned, then checkpoint 2 timed out at once');
  t.is(a.nextTimeout(), undefined);
  a.offer('y', rec('y2'));
  t.deepEqual(names(drain(a)), ['y2@2']);
  a.offer('y', bar(2));
  t.deepEqual(names(drain(a)), ['F2']);
});

test('aligned with a timeout: an abort drops a timed-out checkpoint; a reset forgets the clocks', (t) => {
  let now = 0;
  const a = new InputAligner<string>(['x', 'y'], 'aligned', () => now, 10);
  a.offer('x', bar(1));
  now = 20;
  t.deepEqual(names(drain(a)), ['U1']);
  a.offer('y', rec('y1'));
  a.cancel(1);
  t.deepEqual(names(drain(a)), ['y1'], 'not in flight for an aborted checkpoint');
  a.offer('y', bar(1));
  t.deepEqual(names(drain(a)), [], 'its later barrier is ignored');
  a.offer('x', bar(2));
  t.is(a.nextTimeout(), 30);
  a.reset();
  t.is(a.nextTimeout(), undefined);
});

test('without a timeout, or in other modes, nothing times out', (t) => {
  let now = 0;
  for (const a of [
    new InputAligner<string>(['x', 'y'], 'aligned', () => now),
    new InputAligner<string>(['x', 'y'], 'at-least-once', () => now, 10),
  ]) {
    a.offer('x', bar(1));
    now += 1000;
    t.deepEqual(names(drain(a)), []);
    t.is(a.nextTimeout(), undefined);
  }
});
