/**
 * The NATS permissions of `renderNatsPermissions`, enforced by a real
 * nats-server: a coordinator and an SDK worker run a job, each as its own
 * user; a connection with the worker's credentials forges Recover,
 * Complete and Trigger messages, which the server refuses while the job
 * keeps checkpointing, and cannot subscribe to another job's subjects.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { controlMessageCodecs, epochHeaders, jobSubjects } from '../../src/bus/index.js';
import {
  clientInboxPrefix,
  renderNatsPermissions,
  startEtcd,
  startNats,
  workerInboxPrefix,
  type EtcdProcess,
  type NatsProcess,
} from '../../src/dev/index.js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createLocalDirectoryBackend, createObjectStoreBackend, Worker } from '../../src/sdk/index.js';
import { publishToStream } from '../../src/sdk/jetstream-publish.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { ownServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { countingSink, MemoryLog, tickingSource } from './worker-harness.js';

const PREFIX = 'perm';
const password = (): string => randomBytes(12).toString('hex');
const users = {
  coordinator: { user: 'coordinator', password: password() },
  J: { user: 'worker-J', password: password() },
  K: { user: 'worker-K', password: password() },
  feeder: { user: 'feeder', password: password() },
};
const configText = renderNatsPermissions({
  subjectPrefix: PREFIX,
  coordinator: users.coordinator,
  jobs: [
    {
      jobId: 'J',
      credentials: users.J,
      stateBucket: 'state-J',
      streams: [
        { stream: 'IN_J', consume: true },
        { stream: 'OUT_J', create: true, publish: ['out.J'] },
      ],
    },
    { jobId: 'K', credentials: users.K, stateBucket: 'state-K' },
  ],
  clients: [
    { name: 'feeder', credentials: users.feeder, streams: [{ stream: 'IN_J', create: true, publish: ['in.J'] }] },
  ],
});

let dir = '';
let configFile = '';
let etcd: EtcdProcess | undefined;
let nats: NatsProcess | undefined;
const servers = ownServers(() => ({ etcd, nats }));

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-nats-permissions-'));
  configFile = join(dir, 'nats.conf');
  await writeFile(configFile, configText);
  [etcd, nats] = await Promise.all([startEtcd(), startNats({ extraArgs: ['-c', configFile] })]);
});

test.after.always(async () => {
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** A connection as the worker user of `jobId`, whose server errors land in `errors`. */
async function connectAs(t: ExecutionContext, jobId: 'J' | 'K', errors: string[]): Promise<NatsConnection> {
  const nc = await connect({
    servers: servers.natsUrl,
    user: users[jobId].user,
    pass: users[jobId].password,
    inboxPrefix: workerInboxPrefix(jobId),
    name: `forger-${jobId}`,
  });
  t.teardown(() => nc.close());
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(s.error.message);
  })();
  return nc;
}

test('nats-server accepts the rendered configuration', async (t) => {
  const { stdout, stderr } = await promisify(execFile)('nats-server', ['-t', '-c', configFile]);
  t.log(configText.replace(/password: "[^"]*"/g, 'password: "[redacted]"'));
  t.regex(stdout + stderr, /is valid/);
});

test('an anonymous connection is refused', async (t) => {
  const anonymous = await connect({ servers: servers.natsUrl }).then(
    (nc) => nc.close().then(() => 'connected'),
    (err: unknown) => (err as Error).message,
  );
  t.log(`anonymous: ${anonymous}`);
  t.regex(anonymous, /Authorization Violation/i);
});

test("the server refuses a worker user's forged control messages; the job keeps checkpointing", async (t) => {
  const c = await startTestCoordinator(t, servers, {
    subjectPrefix: PREFIX,
    natsUser: users.coordinator.user,
    natsPassword: users.coordinator.password,
  });
  const jobId = 'J';
  const policy = { intervalMs: 200, retained: 3, tolerableFailures: -1 };
  await c.client.submitJob({
    spec: { jobId, tasks: [{ taskId: 'src' }, { taskId: 'sink', inputs: ['src'] }], policy },
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'ckpt-worker-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const log = new MemoryLog('info');
  const worker = new Worker({
    coordinator: c.address,
    nats: [servers.natsUrl],
    jobId,
    workerId: 'w',
    state: await createLocalDirectoryBackend({ dir: stateDir, fsync: false }),
    logger: log.logger,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    natsAuth: { user: users.J.user, password: users.J.password, inboxPrefix: workerInboxPrefix(jobId) },
  });
  worker.addTask('src', tickingSource(10)).addTask('sink', countingSink([]));
  t.teardown(() => worker.stop());
  const completes: number[] = [];
  worker.on('complete', (m) => completes.push(m.checkpointId));
  await worker.start();
  await worker.waitFor('complete', () => true, { timeoutMs: 20_000 });

  const errors: string[] = [];
  const forger = await connectAs(t, jobId, errors);
  const subjects = jobSubjects(worker.welcome?.controlSubjectPrefix ?? '');
  const codecs = controlMessageCodecs();
  const { term = 0 } = worker.welcome ?? {};
  const epoch = worker.epoch;
  const before = completes.at(-1) ?? 0;
  const headers = epochHeaders(epoch + 1);
  forger.publish(subjects.recover, codecs.recover.encode({ jobId, epoch: epoch + 1, term, checkpointId: 0 }), {
    headers,
  });
  forger.publish(subjects.complete, codecs.complete.encode({ jobId, checkpointId: before + 1, epoch, term }), {
    headers: epochHeaders(epoch),
  });
  forger.publish(subjects.trigger, codecs.trigger.encode({ jobId, checkpointId: before + 1, epoch, term }), {
    headers: epochHeaders(epoch),
  });
  await forger.flush();
  await eventually(() => errors.length >= 3, { what: 'three refusals' });
  for (const text of errors) t.log(`refused: ${text}`);
  for (const kind of ['recover', 'complete', 'trigger'])
    t.true(
      errors.some((e) => /permissions violation/i.test(e) && e.includes(`${PREFIX}.${jobId}.${kind}`)),
      `the ${kind} publish is refused`,
    );

  const [next] = await worker.waitFor('complete', (m) => m.checkpointId > before + 1, { timeoutMs: 15_000 });
  t.log(`checkpoint ${next.checkpointId} completed after the forgeries (last before: ${before})`);
  t.is(worker.epoch, epoch, 'no recovery happened');
  t.false(
    log.lines.some((l) => l.level >= 50),
    'the worker logged no error',
  );
});

test("a worker user of job J cannot subscribe to job K's subjects, nor to other inboxes", async (t) => {
  const errors: string[] = [];
  const nc = await connectAs(t, 'J', errors);
  const refused = [
    `${PREFIX}.K.trigger`,
    `${PREFIX}.K.data.*.*`,
    `${PREFIX}.K.data.src.sink`,
    `${PREFIX}.>`,
    '_INBOX.>',
    workerInboxPrefix('K') + '.>',
  ];
  const closed = await Promise.all(refused.map((subject) => nc.subscribe(subject).closed));
  const allowed = nc.subscribe(`${PREFIX}.J.trigger`);
  await nc.flush();
  for (const [i, subject] of refused.entries()) {
    const why = closed[i];
    t.log(`subscribe ${subject}: ${why instanceof Error ? why.message : 'closed without error'}`);
    t.true(why instanceof Error && /permissions violation/i.test(why.message), subject);
  }
  t.false(allowed.isClosed(), "its own job's subjects stay subscribed");
  for (const text of errors) t.log(`status error: ${text}`);
});

test("a worker user of job J stores snapshots in J's bucket and cannot open K's", async (t) => {
  const nc = await connectAs(t, 'J', []);
  const own = await createObjectStoreBackend({ connection: nc, bucket: 'state-J', storage: 'memory' });
  const bytes = new TextEncoder().encode('state of J');
  const handle = await own.put({ jobId: 'J', taskId: 'sink', checkpointId: 1, epoch: 0 }, bytes);
  t.deepEqual(await own.get(handle), bytes);
  const other = await createObjectStoreBackend({ connection: nc, bucket: 'state-K', storage: 'memory' }).then(
    () => 'opened',
    (err: unknown) => (err as Error).message,
  );
  t.log(`bucket state-K: ${other}`);
  t.not(other, 'opened');
});

test('a worker user of job J reads its input stream and publishes to its output stream, under its own inboxes, and nothing else', async (t) => {
  const feeder = await connect({
    servers: servers.natsUrl,
    user: users.feeder.user,
    pass: users.feeder.password,
    inboxPrefix: clientInboxPrefix('feeder'),
  });
  t.teardown(() => feeder.close());
  await (await jetstreamManager(feeder)).streams.add({ name: 'IN_J', subjects: ['in.J'], storage: 'memory' });
  await jetstream(feeder).publish('in.J', 'a sentence');
  const refusedFeed = await jetstream(feeder)
    .publish('out.J', 'forged output', { timeout: 2_000 })
    .then(
      () => 'published',
      (err: unknown) => (err as Error).message,
    );
  t.log(`feeder publishing to out.J: ${refusedFeed}`);
  t.not(refusedFeed, 'published');

  const nc = await connectAs(t, 'J', []);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'OUT_J', subjects: ['out.J'], storage: 'memory' });
  const consumer = await jetstream(nc).consumers.get('IN_J');
  const message = await consumer.next({ expires: 5_000 });
  t.is(message?.string(), 'a sentence', 'an ordered consumer on the input stream reads it');
  // The sink's batched publication waits for acknowledgements on an inbox of the connection's prefix.
  await publishToStream(nc, {
    subject: 'out.J',
    payloads: [new TextEncoder().encode('a 1')],
    msgId: (i) => `J/sink/1/${i}`,
    maxInFlight: 8,
    timeoutMs: 5_000,
  });
  t.is((await jsm.streams.info('OUT_J')).state.messages, 1);
  const other = await jsm.streams.add({ name: 'OTHER', subjects: ['other'], storage: 'memory' }).then(
    () => 'created',
    (err: unknown) => (err as Error).message,
  );
  t.log(`worker of J creating stream OTHER: ${other}`);
  t.not(other, 'created');
});
