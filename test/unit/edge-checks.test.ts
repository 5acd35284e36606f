import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import fc from 'fast-check';
import { CkptError } from '../../src/core/errors.js';
import { checkCount, checkTextBytes } from '../../src/core/limits.js';
import { boundedSummary, checkHello, cutToBytes } from '../../src/core/request-checks.js';
import { validateJobSpec } from '../../src/core/validate.js';
import { metadataValue, toStatus } from '../../src/server/status.js';

test('metadata values are printable ASCII whatever an error carries, and grpc-js takes them', (t) => {
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary', maxLength: 400 }),
      fc.string({ unit: 'grapheme', maxLength: 50 }),
      (a, b) => {
        const status = toStatus(new CkptError('MALFORMED', `${a}${b}`, { jobId: a, taskId: b }));
        for (const [, value] of Object.entries(status.metadata?.getMap() ?? {})) {
          t.regex(String(value), /^[\x20-\x7e]*$/);
          t.true(String(value).length <= 256);
        }
        // grpc-js percent-encodes the details with encodeURI; it must not throw.
        t.notThrows(() => encodeURI(status.details ?? ''));
        const md = new grpc.Metadata();
        t.notThrows(() => md.set('x', metadataValue(a)));
      },
    ),
    { numRuns: 500 },
  );
  t.is(metadataValue('é\n%'), '%C3%A9%0A%25');
  t.is(metadataValue('job-1_A'), 'job-1_A', 'a valid id is sent as it is');
});

test('numbers above 2^53-1, negative or fractional, are refused, never rounded', (t) => {
  t.is(checkCount(0, 'x'), 0);
  t.is(checkCount(Number.MAX_SAFE_INTEGER, 'x'), Number.MAX_SAFE_INTEGER);
  for (const bad of [2 ** 53, 2 ** 64, -1, 1.5, Number.NaN, '5', undefined]) {
    t.throws(() => checkCount(bad, 'x'), { message: /MALFORMED: x .* must be an integer/ });
  }
  t.throws(() => checkCount(11, 'x', 10), { message: /from 0 to 10/ });
});

test('texts are bounded in UTF-8 bytes; cuts and summaries stay within their bound', (t) => {
  t.is(checkTextBytes('é'.repeat(2048), 4096, 'm'), 'é'.repeat(2048));
  t.throws(() => checkTextBytes('é'.repeat(2049), 4096, 'm'), { message: /^OVERSIZED/ });
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: 'grapheme', maxLength: 300 }), { maxLength: 50 }),
      fc.nat(2000),
      (parts, max) => {
        const limit = max + 64;
        t.true(Buffer.byteLength(boundedSummary(parts, limit)) <= limit);
        const cut = cutToBytes(parts.join(''), max);
        t.true(Buffer.byteLength(cut) <= max);
        t.false(cut.includes('\uFFFD') && !parts.join('').includes('\uFFFD'));
      },
    ),
  );
});

test('a hello is checked whole: worker id, job id, task ids, labels, epoch', (t) => {
  const ok = { workerId: 'host:1:abc', jobId: 'job', taskIds: ['a', 'b'], labels: { sdk: 'ts' }, epoch: 3 };
  t.like(checkHello(ok, 10), { workerId: 'host:1:abc', taskIds: ['a', 'b'], epoch: 3, standby: false });
  for (const bad of [
    { ...ok, workerId: '' },
    { ...ok, workerId: 'a b' },
    { ...ok, workerId: 'é' },
    { ...ok, workerId: 'x'.repeat(257) },
    { ...ok, jobId: 'j/k' },
    { ...ok, taskIds: [] },
    { ...ok, taskIds: ['a', 'a'] },
    { ...ok, taskIds: ['\n'] },
    { ...ok, epoch: 2 ** 60 },
    { ...ok, labels: { k: 'v'.repeat(300) } },
  ]) {
    t.throws(() => checkHello(bad, 10), { instanceOf: CkptError }, JSON.stringify(bad).slice(0, 80));
  }
  t.throws(() => checkHello({ ...ok, taskIds: ['a', 'b', 'c'] }, 2), { message: /^OVERSIZED/ });
});

test('spec validation is linear: a wide fan-out and a long chain of 100,000 tasks validate', (t) => {
  const n = 100_000;
  const fanOut = [{ taskId: 's' }, ...Array.from({ length: n - 1 }, (_, i) => ({ taskId: `r${i}`, inputs: ['s'] }))];
  t.is(validateJobSpec({ jobId: 'wide', tasks: fanOut }).tasks.length, n);
  const chain = Array.from({ length: n }, (_, i) => ({ taskId: `c${i}`, inputs: i === 0 ? [] : [`c${i - 1}`] }));
  t.is(validateJobSpec({ jobId: 'chain', tasks: chain }).tasks.length, n);
  t.throws(() => validateJobSpec({ jobId: 'big', tasks: [...fanOut, { taskId: 'x' }] }), { message: /^OVERSIZED/ });
});
