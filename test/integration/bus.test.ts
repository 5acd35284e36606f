import test, { type ExecutionContext } from 'ava';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import {
  barrierHeaders,
  connectNats,
  controlMessageCodecs,
  controlPrefix,
  createNatsBus,
  edgeOfSubject,
  edgeSubject,
  epochOf,
  inputSubjectsOf,
  isBarrier,
  isSubjectPrefix,
  isSubjectToken,
  jobSubjects,
  type NatsBus,
} from '../../src/bus/index.js';
import { CkptError, hasReason } from '../../src/core/errors.js';
import { startNats } from '../../src/dev/index.js';
import { silentLogger } from '../../src/log/index.js';
import { natsConnection } from '../helpers/clients.js';
import { uniquePrefix, useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers({ etcd: false });

async function bus(
  t: ExecutionContext,
  servers: string[],
  subjectPrefix: string,
  confirmTimeoutMs?: number,
): Promise<NatsBus> {
  const b = await createNatsBus({
    servers,
    subjectPrefix,
    logger: silentLogger(),
    name: t.title.slice(0, 64),
    confirmTimeoutMs,
  });
  t.teardown(() => b.close());
  return b;
}

/** Records every message under `subject` (wildcards allowed), once the server has the subscription. */
async function record(nc: NatsConnection, subject: string): Promise<Msg[]> {
  const received: Msg[] = [];
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      received.push(msg);
    },
  });
  await nc.flush();
  return received;
}

test('control messages arrive decoded on the documented subjects with the epoch header', async (t) => {
  const prefix = uniquePrefix(t).nats;
  const b = await bus(t, [servers.natsUrl], prefix);
  const nc = await natsConnection(t, servers.natsUrl);
  const received = await record(nc, `${prefix}.>`);
  const codecs = controlMessageCodecs();

  t.is(b.controlPrefix('job-1'), `${prefix}.job-1`);
  await b.publishTrigger({
    jobId: 'job-1',
    checkpointId: 7,
    epoch: 2,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: 1000,
    deadlineMs: 61000,
    term: 5,
  });
  await b.publishComplete({ jobId: 'job-1', checkpointId: 7, epoch: 2, completedAtMs: 1500, term: 5 });
  await b.publishAbort({
    jobId: 'job-1',
    checkpointId: 8,
    epoch: 2,
    reason: 'ABORT_REASON_DECLINED',
    message: 'task a declined',
    term: 5,
  });
  await b.publishRecover({ jobId: 'job-1', epoch: 3, checkpointId: 7, term: 5 });

  await eventually(() => received.length >= 4, { what: 'four control messages' });
  const s = jobSubjects(b.controlPrefix('job-1'));
  t.deepEqual(
    received.map((m) => m.subject),
    [s.trigger, s.complete, s.abort, s.recover],
  );
  t.deepEqual(
    received.map((m) => epochOf(m.headers)),
    [2, 2, 2, 3],
  );
  t.false(received.some((m) => isBarrier(m.headers)));
  const [trigger, complete, abort, recover] = received as [Msg, Msg, Msg, Msg];
  t.deepEqual(codecs.trigger.decode(trigger.data), {
    jobId: 'job-1',
    checkpointId: 7,
    epoch: 2,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: 1000,
    deadlineMs: 61000,
    term: 5,
  });
  t.deepEqual(codecs.complete.decode(complete.data), {
    jobId: 'job-1',
    checkpointId: 7,
    epoch: 2,
    completedAtMs: 1500,
    term: 5,
  });
  t.deepEqual(codecs.abort.decode(abort.data), {
    jobId: 'job-1',
    checkpointId: 8,
    epoch: 2,
    reason: 'ABORT_REASON_DECLINED',
    message: 'task a declined',
    term: 5,
  });
  t.deepEqual(codecs.recover.decode(recover.data), { jobId: 'job-1', epoch: 3, checkpointId: 7, term: 5 });
});

test('messages of one job do not reach subscribers of another', async (t) => {
  const prefix = uniquePrefix(t).nats;
  const b = await bus(t, [servers.natsUrl], prefix);
  const nc = await natsConnection(t, servers.natsUrl);
  const other = await record(nc, `${prefix}.job-b.>`);
  const mine = await record(nc, `${prefix}.job-a.trigger`);
  await b.publishTrigger({ jobId: 'job-a', checkpointId: 1, epoch: 1 });
  await eventually(() => mine.length === 1, { what: 'the trigger of job-a' });
  await nc.flush();
  t.is(other.length, 0);
});

test('the subject validator refuses bad tokens', (t) => {
  for (const good of ['a', 'job-1', 'Task_9', 'x'.repeat(128)]) t.true(isSubjectToken(good), good);
  for (const bad of ['', 'a.b', 'a*', '>', '*', 'with space', 'tab\t', 'x'.repeat(129), 'ü', 'a\nb']) {
    t.false(isSubjectToken(bad), JSON.stringify(bad));
  }
  t.true(isSubjectPrefix('ckpt'));
  t.true(isSubjectPrefix('t_run.ckpt'));
  for (const bad of ['', '.ckpt', 'ckpt.', 'a..b', 'a.>', 'a.*']) t.false(isSubjectPrefix(bad), JSON.stringify(bad));

  const malformed = { instanceOf: CkptError, message: /^MALFORMED: / };
  t.throws(() => controlPrefix('ckpt', 'job.1'), malformed);
  t.throws(() => controlPrefix('ckpt', '*'), malformed);
  t.throws(() => controlPrefix('ckpt.', 'job'), malformed);
  t.throws(() => edgeSubject('ckpt.job', 'src', 'task>'), malformed);
  t.throws(() => edgeSubject('ckpt.job', 'a.b', 'c'), malformed);
  t.throws(() => inputSubjectsOf('ckpt.job', '*'), malformed);
  t.is(edgeSubject('ckpt.job', 'src', 'map-1'), 'ckpt.job.data.src.map-1');
  t.is(inputSubjectsOf('ckpt.job', 'map-1'), 'ckpt.job.data.*.map-1');
  t.is(jobSubjects('ckpt.job').edge('src', 'map-1'), 'ckpt.job.data.src.map-1');
  t.is(jobSubjects('ckpt.job').inputs('map-1'), 'ckpt.job.data.*.map-1');
  t.is(jobSubjects('ckpt.job').allEdges, 'ckpt.job.data.*.*');
  t.deepEqual(edgeOfSubject('ckpt.job', 'ckpt.job.data.src.map-1'), { from: 'src', to: 'map-1' });
  t.is(edgeOfSubject('ckpt.job', 'ckpt.job.data.map-1'), undefined, 'a per-task subject is no edge');
  t.is(edgeOfSubject('ckpt.job', 'ckpt.job.data.a.b.c'), undefined);
  t.is(edgeOfSubject('ckpt.job', 'ckpt.job.data.*.b'), undefined);
  t.is(edgeOfSubject('ckpt.job', 'ckpt.other.data.src.map-1'), undefined);
});

test('publishing for a job id that is no subject token fails MALFORMED and publishes nothing', async (t) => {
  const prefix = uniquePrefix(t).nats;
  const b = await bus(t, [servers.natsUrl], prefix);
  const nc = await natsConnection(t, servers.natsUrl);
  const received = await record(nc, `${prefix}.>`);
  for (const jobId of ['a.b', '>', 'a b', '']) {
    const err = await t.throwsAsync(b.publishTrigger({ jobId, checkpointId: 1, epoch: 1 }));
    t.true(hasReason(err, 'MALFORMED'), String(err));
  }
  await nc.flush();
  t.is(received.length, 0);
});

test('a bus refuses an invalid subject prefix', async (t) => {
  const err = await t.throwsAsync(
    createNatsBus({ servers: [servers.natsUrl], subjectPrefix: 'a.*', logger: silentLogger() }),
  );
  t.true(hasReason(err, 'MALFORMED'));
  t.regex(err?.message ?? '', /subjectPrefix/);
});

test('barrier headers mark a barrier and carry the epoch on an edge subject', async (t) => {
  const prefix = uniquePrefix(t).nats;
  const nc = await natsConnection(t, servers.natsUrl);
  const cp = controlPrefix(prefix, 'job');
  const received = await record(nc, jobSubjects(cp).allEdges);
  const intoMap = await record(nc, inputSubjectsOf(cp, 'map'));
  const codecs = controlMessageCodecs();
  nc.publish(edgeSubject(cp, 'src', 'map'), new TextEncoder().encode('record'), { headers: barrierHeaders(4) });
  nc.publish(
    edgeSubject(cp, 'src', 'map'),
    codecs.barrier.encode({ jobId: 'job', checkpointId: 3, epoch: 4, fromTaskId: 'src' }),
    { headers: barrierHeaders(4) },
  );
  nc.publish(edgeSubject(cp, 'src', 'other'), new TextEncoder().encode('elsewhere'));
  await eventually(() => received.length === 3);
  const barrier = received[1];
  t.true(isBarrier(barrier?.headers));
  t.is(epochOf(barrier?.headers), 4);
  t.is(codecs.barrier.decode(barrier?.data ?? new Uint8Array()).checkpointId, 3);
  t.deepEqual(edgeOfSubject(cp, barrier?.subject ?? ''), { from: 'src', to: 'map' });
  t.deepEqual(
    intoMap.map((m) => m.subject),
    [edgeSubject(cp, 'src', 'map'), edgeSubject(cp, 'src', 'map')],
    'the inputs of map only',
  );
});

test('after close, publishing fails UNAVAILABLE and is not retryable', async (t) => {
  const b = await createNatsBus({
    servers: [servers.natsUrl],
    subjectPrefix: uniquePrefix(t).nats,
    logger: silentLogger(),
  });
  await b.close();
  const err = await t.throwsAsync(b.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 }));
  t.true(hasReason(err, 'UNAVAILABLE'));
  t.false((err as CkptError).retryable);
});

test('while NATS is down publishing fails UNAVAILABLE retryable, and works again after a restart', async (t) => {
  const nats = await startNats();
  t.teardown(() => nats.stop());
  const prefix = uniquePrefix(t).nats;
  const b = await bus(t, [nats.url], prefix, 1000);
  const sub = await connectNats([nats.url], 'subscriber');
  t.teardown(() => sub.close());
  const received = await record(sub, `${prefix}.job.trigger`);

  await nats.kill('SIGKILL');
  const err = await t.throwsAsync(b.publishTrigger({ jobId: 'job', checkpointId: 1, epoch: 1 }));
  t.true(hasReason(err, 'UNAVAILABLE'), String(err));
  t.true((err as CkptError).retryable);

  await nats.restart();
  await eventually(
    async () => {
      await b.publishTrigger({ jobId: 'job', checkpointId: 2, epoch: 1 });
      return received.some((m) => controlMessageCodecs().trigger.decode(m.data).checkpointId === 2);
    },
    { timeoutMs: 20_000, pollMs: 200, what: 'a trigger after the restart' },
  );
  t.pass();
});
