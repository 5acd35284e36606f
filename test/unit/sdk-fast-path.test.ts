import test from 'ava';
import { headers, MsgHdrsImpl } from '@nats-io/nats-core';
import { serverFiltersSlowly, subjectMatches } from '../../src/sdk/jetstream-filter.js';
import { isPromiseLike, settledOf } from '../../src/sdk/promise-like.js';
import { KEY_HEADER, recordHeaders } from '../../src/sdk/record.js';

test('a subject filter matches as NATS does: * is one token, a final > one or more', (t) => {
  t.true(subjectMatches('a.b', 'a.b'));
  t.false(subjectMatches('a.b', 'a.c'));
  t.false(subjectMatches('a.b', 'a.b.c'));
  t.true(subjectMatches('a.*', 'a.b'));
  t.false(subjectMatches('a.*', 'a'));
  t.false(subjectMatches('a.*', 'a.b.c'));
  t.true(subjectMatches('a.*.c', 'a.b.c'));
  t.false(subjectMatches('a.*.c', 'a.b.d'));
  t.true(subjectMatches('a.>', 'a.b'));
  t.true(subjectMatches('a.>', 'a.b.c'));
  t.false(subjectMatches('a.>', 'a'));
  t.true(subjectMatches('>', 'a'));
  t.true(subjectMatches('*.>', 'a.b'));
  t.false(subjectMatches('*.>', 'a'));
});

test('servers before 2.10 are the ones whose subject filter can turn slow', (t) => {
  t.true(serverFiltersSlowly('2.9.10'));
  t.true(serverFiltersSlowly('v2.9.25'));
  t.true(serverFiltersSlowly('1.4.1'));
  t.false(serverFiltersSlowly('2.10.0'));
  t.false(serverFiltersSlowly('2.11.3-beta'));
  t.false(serverFiltersSlowly('3.0.0'));
  t.false(serverFiltersSlowly(undefined));
  t.false(serverFiltersSlowly('unknown'));
});

test('a hook result is awaited only when it is a promise or a thenable', async (t) => {
  t.true(isPromiseLike(Promise.resolve()));
  t.true(isPromiseLike({ then: () => undefined }));
  t.true(isPromiseLike(Object.assign(() => undefined, { then: () => undefined })));
  for (const plain of [undefined, null, 0, 'then', {}, { then: true }, new Uint8Array(1), []]) {
    t.false(isPromiseLike(plain), JSON.stringify(plain) ?? 'undefined');
  }
  await t.notThrowsAsync(settledOf(Promise.reject(new Error('handled elsewhere (test)'))));
});

test('reused record headers encode as fresh ones do, once, and again after a change', (t) => {
  const reused = recordHeaders(3, 'k é.1') as MsgHdrsImpl;
  const fresh = headers();
  fresh.set('ckpt-epoch', '3');
  fresh.set(KEY_HEADER, encodeURIComponent('k é.1'));
  const first = reused.encode();
  t.deepEqual(first, (fresh as MsgHdrsImpl).encode());
  t.is(reused.encode(), first, 'encoded once');
  t.is(MsgHdrsImpl.decode(first).get(KEY_HEADER), encodeURIComponent('k é.1'));
  reused.set('ckpt-epoch', '4');
  fresh.set('ckpt-epoch', '4');
  t.deepEqual(reused.encode(), (fresh as MsgHdrsImpl).encode());
  t.is(recordHeaders(5).get(KEY_HEADER), '', 'no key header without a key');
});
