import test from 'ava';
import { handleUris, SharedStateRegistry, type HandleLike } from '../../src/core/shared-state-registry.js';
import { garbageReason, slicesOf, type SweepScope } from '../../src/core/state-sweep.js';

/** A handle of `uri` building on `shared`. */
function h(uri: string, ...shared: HandleLike[]): HandleLike {
  return { uri, shared };
}

/** A manifest's tasks: one per handle. */
function tasks(...handles: HandleLike[]): Array<{ state: HandleLike }> {
  return handles.map((state) => ({ state }));
}

test('handleUris names every uri once, through nested shared pieces, and skips stateless tasks', (t) => {
  const base = h('p1');
  t.deepEqual(handleUris([h('p3', h('p2', base), base), h('')]).sort(), ['p1', 'p2', 'p3']);
});

test('a piece named by several retained checkpoints goes only when the last of them is dropped', (t) => {
  const r = new SharedStateRegistry();
  r.register('job', 1, tasks(h('a/1'), h('b/1')));
  r.register('job', 2, tasks(h('a/2', h('a/1')), h('b/2')));
  r.register('job', 3, tasks(h('a/3', h('a/1'), h('a/2')), h('b/3')));
  t.deepEqual(r.unregister('job', [1]).sort(), ['b/1'], 'a/1 is still shared by 2 and 3');
  t.true(r.isLive('a/1'));
  t.deepEqual(r.unregister('job', [2]).sort(), ['b/2']);
  t.deepEqual(r.unregister('job', [3]).sort(), ['a/1', 'a/2', 'a/3', 'b/3']);
  t.is(r.size, 0);
  t.deepEqual(r.unregister('job', [3]), [], 'dropping a checkpoint twice releases nothing');
});

test('registering a checkpoint twice counts it once', (t) => {
  const r = new SharedStateRegistry();
  r.register('job', 1, tasks(h('a/1')));
  r.register('job', 1, tasks(h('a/1')));
  t.deepEqual(r.unregister('job', [1]), ['a/1']);
});

test('pinned savepoint handles outlive retention, and go when unpinned', (t) => {
  const r = new SharedStateRegistry();
  r.register('job', 1, tasks(h('a/1')));
  t.deepEqual(r.pin('job', [h('a/1')]), []);
  t.deepEqual(r.unregister('job', [1]), [], 'the savepoint still names a/1');
  t.true(r.isLive('a/1'));
  t.deepEqual(r.pin('job', []), ['a/1']);
});

test('forgetting a canceled job drops its checkpoints and keeps its savepoints', (t) => {
  const r = new SharedStateRegistry();
  r.register('job', 1, tasks(h('a/1'), h('b/1')));
  r.pin('job', [h('a/1')]);
  t.deepEqual(r.heldOnlyBy('job'), ['b/1']);
  t.deepEqual(r.forgetJob('job'), ['b/1']);
  t.true(r.isLive('a/1'));
  t.deepEqual(r.checkpointIds('job'), []);
});

test('pieces of one job that another job builds on stay when the first job is forgotten', (t) => {
  const r = new SharedStateRegistry();
  r.register('old', 4, tasks(h('old/a/4'), h('old/b/4')));
  r.register('new', 1, tasks(h('new/a/1', h('old/a/4'))));
  t.deepEqual(r.heldOnlyBy('old'), ['old/b/4']);
  t.deepEqual(r.forgetJob('old'), ['old/b/4']);
  t.true(r.isLive('old/a/4'));
  t.deepEqual(r.checkpointIds('old'), []);
});

test('releasedShared names the shared pieces nothing retained names, not the new piece itself', (t) => {
  const r = new SharedStateRegistry();
  r.register('job', 1, tasks(h('a/1')));
  r.register('job', 2, tasks(h('a/2')));
  r.unregister('job', [1]);
  t.deepEqual(r.releasedShared(tasks(h('a/3', h('a/2')))), []);
  t.deepEqual(r.releasedShared(tasks(h('a/3', h('a/2'), h('a/1')))), ['a/1']);
  t.deepEqual(r.releasedShared([{ state: null }, {}]), []);
});

test('a rebuild from the retained manifests gives a new leader the same answers as the old one', (t) => {
  const old = new SharedStateRegistry();
  const manifests = [
    { checkpointId: 1, tasks: tasks(h('a/1')) },
    { checkpointId: 2, tasks: tasks(h('a/2', h('a/1'))) },
    { checkpointId: 3, tasks: tasks(h('a/3', h('a/1'))) },
  ];
  for (const m of manifests) old.register('job', m.checkpointId, m.tasks);
  old.unregister('job', [1]);
  // The new leader reads only what etcd still retains: checkpoints 2 and 3.
  const fresh = new SharedStateRegistry();
  fresh.register('stale', 9, tasks(h('stale/1')));
  fresh.rebuild([{ jobId: 'job', manifests: manifests.slice(1), pinned: [h('sp/1')] }]);
  t.false(fresh.isLive('stale/1'), 'a rebuild forgets what was registered before');
  for (const uri of ['a/1', 'a/2', 'a/3']) t.is(fresh.isLive(uri), old.isLive(uri), uri);
  t.true(fresh.isLive('sp/1'));
  t.deepEqual(fresh.checkpointIds('job'), [2, 3]);
  t.deepEqual(fresh.unregister('job', [2]).sort(), old.unregister('job', [2]).sort());
  t.deepEqual(fresh.unregister('job', [3]).sort(), ['a/1', 'a/3']);
});

function scope(overrides: Partial<SweepScope> = {}): SweepScope {
  return {
    jobId: 'job',
    nowMs: 100_000,
    orphanGraceMs: 10_000,
    isLive: (uri) => uri === 'live',
    mayCommit: (id) => id >= 50,
    released: new Set(['released']),
    canceledStateDue: false,
    ...overrides,
  };
}

test('the sweep rule keeps what is live, pending or young, and names why the rest goes', (t) => {
  const piece = { uri: 'x', jobId: 'job', checkpointId: 10, modifiedAtMs: 0 };
  t.is(garbageReason(piece, scope()), 'orphan');
  t.is(garbageReason({ ...piece, uri: 'live' }, scope()), undefined);
  t.is(garbageReason({ ...piece, jobId: 'other' }, scope()), undefined);
  t.is(garbageReason({ ...piece, checkpointId: 50 }, scope()), undefined, 'its checkpoint may still commit');
  t.is(garbageReason({ ...piece, modifiedAtMs: 95_000 }, scope()), undefined, 'younger than the grace period');
  t.is(garbageReason({ ...piece, uri: 'released', modifiedAtMs: 99_999 }, scope()), 'subsumed');
  t.is(garbageReason({ ...piece, checkpointId: 60 }, scope({ canceledStateDue: true })), 'canceled');
  t.is(garbageReason({ ...piece, uri: 'live' }, scope({ canceledStateDue: true })), undefined);
});

test('long lists go out in slices of bounded size', (t) => {
  const items = Array.from({ length: 600 }, (_, i) => i);
  t.deepEqual(
    slicesOf(items).map((s) => s.length),
    [256, 256, 88],
  );
  t.deepEqual(slicesOf([]), []);
});
