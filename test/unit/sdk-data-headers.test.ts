import test from 'ava';
import { headers as natsHeaders, type Msg, type MsgHdrs } from '@nats-io/nats-core';
import { MsgHdrsImpl, MsgImpl } from '@nats-io/nats-core/internal';
import { BARRIER_HEADER, EPOCH_HEADER, barrierHeaders } from '../../src/bus/index.js';
import { msgIdHeaders } from '../../src/sdk/jetstream-publish.js';
import { dataHeadersOf, KEY_HEADER, recordHeaders } from '../../src/sdk/record.js';

const encoder = new TextEncoder();

/** The bytes nats.js publishes for `h`. */
function encoded(h: MsgHdrs): Uint8Array {
  return (h as MsgHdrsImpl).encode();
}

/** A received message as nats.js's parser hands it over: header block and payload in one buffer. */
function received(headerBlock: Uint8Array | undefined, payload = encoder.encode('p')): Msg {
  const raw = new Uint8Array((headerBlock?.length ?? 0) + payload.length);
  if (headerBlock !== undefined) raw.set(headerBlock);
  raw.set(payload, headerBlock?.length ?? 0);
  const args = { subject: encoder.encode('s'), sid: 1, hdr: headerBlock?.length ?? -1, size: raw.length };
  return new MsgImpl(args, raw, {} as never);
}

/** What the SDK read before: nats.js's full header object. */
function viaNatsJs(msg: Msg): { epoch: number | undefined; barrier: boolean; key: string | undefined } {
  const h = msg.headers;
  const epoch = h?.get(EPOCH_HEADER) ?? '';
  const key = h?.get(KEY_HEADER) ?? '';
  return {
    epoch: /^\d{1,15}$/.test(epoch) ? Number(epoch) : undefined,
    barrier: h?.get(BARRIER_HEADER) === '1',
    key: key === '' ? undefined : decodeURIComponent(key),
  };
}

const blocks: Array<[string, string]> = [
  ['record', 'NATS/1.0\r\nckpt-epoch: 7\r\n\r\n'],
  ['keyed record', 'NATS/1.0\r\nckpt-epoch: 12\r\nckpt-key: a%20b%2Fc\r\n\r\n'],
  ['barrier', 'NATS/1.0\r\nckpt-epoch: 3\r\nckpt-barrier: 1\r\n\r\n'],
  ['no epoch', 'NATS/1.0\r\nother: 1\r\n\r\n'],
  ['epoch not a number', 'NATS/1.0\r\nckpt-epoch: 1e3\r\n\r\n'],
  ['repeated header: the first counts', 'NATS/1.0\r\nckpt-epoch: 4\r\nckpt-epoch: 5\r\n\r\n'],
  ['other case is another header', 'NATS/1.0\r\nCkpt-Epoch: 4\r\n\r\n'],
  ['spaces around values', 'NATS/1.0\r\nckpt-epoch:   9  \r\nckpt-barrier:1\r\n\r\n'],
  ['line without a colon', 'NATS/1.0\r\nnonsense\r\nckpt-epoch: 2\r\n\r\n'],
  ['colon in a value', 'NATS/1.0\r\nckpt-key: a:b\r\nckpt-epoch: 2\r\n\r\n'],
  ['status line', 'NATS/1.0 503\r\n\r\n'],
  ['empty key', 'NATS/1.0\r\nckpt-epoch: 1\r\nckpt-key: \r\n\r\n'],
];

for (const [name, block] of blocks) {
  test(`dataHeadersOf reads like nats.js: ${name}`, (t) => {
    const bytes = encoder.encode(block);
    t.deepEqual(dataHeadersOf(received(bytes)), viaNatsJs(received(bytes)));
  });
}

test('dataHeadersOf reads the headers the SDK writes', (t) => {
  t.deepEqual(dataHeadersOf(received(encoded(recordHeaders(5, 'ü key/%')))), {
    epoch: 5,
    barrier: false,
    key: 'ü key/%',
  });
  t.deepEqual(dataHeadersOf(received(encoded(barrierHeaders(6)))), { epoch: 6, barrier: true, key: undefined });
});

test('dataHeadersOf: a message without headers has none', (t) => {
  t.deepEqual(dataHeadersOf(received(undefined)), { epoch: undefined, barrier: false, key: undefined });
});

test('dataHeadersOf reads a message nats.js did not lay out as a MsgImpl through its headers', (t) => {
  const h = natsHeaders();
  h.set(EPOCH_HEADER, '8');
  h.set(KEY_HEADER, 'k');
  const msg = { headers: h, data: new Uint8Array(0) } as unknown as Msg;
  t.deepEqual(dataHeadersOf(msg), { epoch: 8, barrier: false, key: 'k' });
});

test('msgIdHeaders encodes the bytes nats.js writes for the same header', (t) => {
  const expected = natsHeaders();
  expected.set('Nats-Msg-Id', 'job/sink/3/17');
  t.deepEqual(encoded(msgIdHeaders('job/sink/3/17')), encoded(expected));
  t.is(msgIdHeaders('job/sink/3/17').get('Nats-Msg-Id'), 'job/sink/3/17');
});

test('msgIdHeaders with another header encodes both', (t) => {
  const h = msgIdHeaders('id-1');
  h.set('x-other', 'v');
  const expected = natsHeaders();
  expected.set('Nats-Msg-Id', 'id-1');
  expected.set('x-other', 'v');
  t.deepEqual(encoded(h), encoded(expected));
});

test('msgIdHeaders refuses an id with a line break', (t) => {
  t.throws(() => msgIdHeaders('a\r\nb'), { message: /line break/ });
});
