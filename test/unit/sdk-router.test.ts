import test from 'ava';
import { createHash } from 'node:crypto';
import { CkptError } from '../../src/core/errors.js';
import { edgeSubject, fnv1a32, partitionOf, Router, taskOfEdgeSubject } from '../../src/sdk/index.js';

test('FNV-1a matches the reference values', (t) => {
  t.is(fnv1a32(''), 0x811c9dc5);
  t.is(fnv1a32('a'), 0xe40c292c);
  t.is(fnv1a32('foobar'), 0xbf9cf968);
});

test('FNV-1a hashes the UTF-8 bytes of text that is not ASCII', (t) => {
  const overBytes = (text: string): number => {
    let hash = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    return hash;
  };
  for (const text of ['é', 'über', 'ab\u00ffc', '日本語', 'emoji 😀', 'mixed ascii then é']) {
    t.is(fnv1a32(text), overBytes(text), text);
  }
});

test('the key router is stable: the same key always goes to the same task, whatever the given order', (t) => {
  const a = new Router('src', ['t3', 't1', 't2']);
  const b = new Router('src', ['t2', 't3', 't1']);
  t.deepEqual(a.targets, ['t1', 't2', 't3']);
  for (let i = 0; i < 1000; i += 1) {
    const key = `key-${i}`;
    const [first] = a.route({ key });
    t.deepEqual(a.route({ key }), [first]);
    t.deepEqual(b.route({ key }), [first]);
  }
});

test('the key router is balanced over the downstream tasks', (t) => {
  const sequential = (i: number): string => `user-${i}`;
  const hashed = (i: number): string => createHash('sha1').update(String(i)).digest('hex').slice(0, 12);
  for (const keyOf of [sequential, hashed]) {
    for (const n of [2, 3, 4, 7, 16]) {
      const counts = new Array<number>(n).fill(0);
      const keys = 20_000;
      for (let i = 0; i < keys; i += 1) {
        const p = partitionOf(keyOf(i), n);
        counts[p] = (counts[p] ?? 0) + 1;
      }
      const expected = keys / n;
      for (const count of counts) t.true(Math.abs(count - expected) / expected < 0.1, `n=${n}: ${counts.join(',')}`);
    }
  }
});

test('without key or target a record goes to every downstream task; a named target must be downstream', (t) => {
  const r = new Router('src', ['b', 'a']);
  t.deepEqual(r.route(), ['a', 'b']);
  t.deepEqual(r.route({ to: 'b', key: 'x' }), ['b']);
  const err = t.throws(() => r.route({ to: 'c' }), { instanceOf: CkptError });
  t.is(err?.reason, 'MALFORMED');
  t.deepEqual(new Router('sink', []).route({ key: 'k' }), []);
});

test('edge subjects name both ends and parse back', (t) => {
  const s = edgeSubject('ckpt.job', 'a', 'b');
  t.is(s, 'ckpt.job.data.a.b');
  t.deepEqual(taskOfEdgeSubject('ckpt.job', s), { from: 'a', to: 'b' });
  t.is(taskOfEdgeSubject('ckpt.job', 'ckpt.job.data.a'), undefined);
  t.is(taskOfEdgeSubject('ckpt.other', s), undefined);
  t.throws(() => edgeSubject('ckpt.job', 'a.b', 'c'), { instanceOf: CkptError });
});
