/**
 * The NATS users `renderNatsPermissions` writes for application streams:
 * a job's worker may use the streams its tasks read and write, a stream
 * client only its streams and its own inboxes, and neither may be given a
 * subject of ckpt's. (test/integration/nats-permissions.test.ts and
 * cluster.test.ts run them on real servers.)
 */
import test from 'ava';
import {
  clientInboxPrefix,
  renderNatsPermissions,
  streamClientPermissions,
  workerPermissions,
} from '../../src/dev/index.js';

const INPUT = { stream: 'SENTENCES', consume: true };
const OUTPUT = { stream: 'WORDCOUNT', create: true, publish: ['wordcount.out'] };

test("a worker with streams may call the JetStream API on those streams only, as asked, and publish its sinks' subjects", (t) => {
  const p = workerPermissions('ckpt', { jobId: 'wc', streams: [INPUT, OUTPUT] });
  t.deepEqual(p.publish.allow, [
    'ckpt.wc.data.*.*',
    // Credits: the flow control of the edges.
    'ckpt.wc.credit.*.*',
    // The source reads its input with ordered consumers.
    '$JS.API.INFO',
    '$JS.API.STREAM.INFO.SENTENCES',
    '$JS.API.CONSUMER.CREATE.SENTENCES',
    '$JS.API.CONSUMER.CREATE.SENTENCES.>',
    '$JS.API.CONSUMER.INFO.SENTENCES.>',
    '$JS.API.CONSUMER.DELETE.SENTENCES.>',
    '$JS.API.CONSUMER.MSG.NEXT.SENTENCES.>',
    '$JS.FC.SENTENCES.>',
    // The sink creates its stream unless it exists, and publishes to it.
    '$JS.API.STREAM.INFO.WORDCOUNT',
    '$JS.API.STREAM.CREATE.WORDCOUNT',
    'wordcount.out',
  ]);
  t.deepEqual(p.subscribe.allow, [
    'ckpt.wc.trigger',
    'ckpt.wc.complete',
    'ckpt.wc.abort',
    'ckpt.wc.recover',
    'ckpt.wc.data.*.*',
    'ckpt.wc.credit.*.*',
    '_INBOX_wc.>',
  ]);
});

test('a stream only looked up, or only read with message gets, grants no more', (t) => {
  const looked = workerPermissions('ckpt', { jobId: 'wc', streams: [{ stream: 'S' }] });
  t.deepEqual(looked.publish.allow, [
    'ckpt.wc.data.*.*',
    'ckpt.wc.credit.*.*',
    '$JS.API.INFO',
    '$JS.API.STREAM.INFO.S',
  ]);
  const got = workerPermissions('ckpt', { jobId: 'wc', streams: [{ stream: 'S', get: true }] });
  t.deepEqual(got.publish.allow.slice(4), ['$JS.API.STREAM.MSG.GET.S', '$JS.API.DIRECT.GET.S.>']);
});

test('a worker without streams gets no JetStream API at all', (t) => {
  const p = workerPermissions('ckpt', { jobId: 'wc' });
  t.deepEqual(p.publish.allow, ['ckpt.wc.data.*.*', 'ckpt.wc.credit.*.*']);
});

test("a stream client publishes its subjects, calls its streams' API, and reads only its own inboxes", (t) => {
  const p = streamClientPermissions('ckpt', {
    name: 'feeder',
    streams: [
      { stream: 'SENTENCES', publish: ['sentences.*'], get: true },
      { stream: 'WORDCOUNT', consume: true },
    ],
  });
  t.true(p.publish.allow.includes('sentences.*'));
  t.true(p.publish.allow.includes('$JS.API.STREAM.MSG.GET.SENTENCES'));
  t.true(p.publish.allow.includes('$JS.API.CONSUMER.CREATE.WORDCOUNT.>'));
  t.false(p.publish.allow.includes('wordcount.out'), 'a stream it reads is not published to');
  t.false(p.publish.allow.includes('$JS.API.STREAM.CREATE.SENTENCES'), 'nor created, unless asked');
  t.deepEqual(p.publish.deny, ['ckpt.>', '_INBOX.>']);
  t.deepEqual(p.subscribe.allow, [`${clientInboxPrefix('feeder')}.>`]);
  t.is(clientInboxPrefix('feeder'), '_INBOX_CLIENT_feeder');
});

test("a stream subject under ckpt's prefix, a wildcard that reaches it, or an inbox is refused, naming it", (t) => {
  for (const subject of ['ckpt.wc.trigger', 'ckpt.>', '*.wc.data.a.b', '>', '_INBOX.x', '_INBOX_wc.x']) {
    const err = t.throws(() =>
      streamClientPermissions('ckpt', { name: 'feeder', streams: [{ stream: 'S', publish: [subject] }] }),
    );
    t.true(err?.message.includes(subject), err?.message);
  }
  t.throws(() => workerPermissions('ckpt', { jobId: 'wc', streams: [{ stream: 'S', publish: ['a..b'] }] }), {
    message: /not a subject/,
  });
  t.throws(() => workerPermissions('ckpt', { jobId: 'wc', streams: [{ stream: 'S.T' }] }), {
    message: /stream "S.T"/,
  });
  t.throws(() => streamClientPermissions('ckpt', { name: 'feeder', streams: [] }), { message: /no streams/ });
  t.throws(() => streamClientPermissions('ckpt', { name: 'a.b', streams: [INPUT] }), { message: /client name/ });
});

test('the rendered block holds every stream client once, after the workers', (t) => {
  const text = renderNatsPermissions({
    subjectPrefix: 'ckpt',
    coordinator: { user: 'coordinator', password: 'c' },
    jobs: [{ jobId: 'wc', credentials: { user: 'worker-wc', password: 'w' }, streams: [INPUT, OUTPUT] }],
    clients: [{ name: 'feeder', credentials: { user: 'feeder', password: 'f' }, streams: [INPUT] }],
  });
  t.regex(
    text,
    /# worker of job wc[\s\S]*"wordcount\.out"[\s\S]*# stream client feeder[\s\S]*"_INBOX_CLIENT_feeder\.>"/,
  );
  const twice = {
    subjectPrefix: 'ckpt',
    coordinator: { user: 'coordinator', password: 'c' },
    jobs: [],
    clients: [
      { name: 'feeder', credentials: { user: 'a', password: 'a' }, streams: [INPUT] },
      { name: 'feeder', credentials: { user: 'b', password: 'b' }, streams: [INPUT] },
    ],
  };
  t.throws(() => renderNatsPermissions(twice), { message: /stream client feeder is listed twice/ });
});
