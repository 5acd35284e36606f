/**
 * The NATS users of deploy/kubernetes/base/nats.conf, enforced by a real
 * nats-server: the file's accounts, users, permissions and client TLS,
 * without what belongs to a pod (cluster routes, ports, paths, the
 * advertised name), with a test PKI for 127.0.0.1 and the passwords
 * filled in. A coordinator and the word count's three workers connect as
 * the Kubernetes Deployments do (the users coordinator and
 * worker-wordcount with password files, the servers' CA, the SDK's inbox
 * prefix of the job); a feeder user that only this test adds fills the
 * input stream. The word count's output comes out exactly once and no
 * component is refused anything, so the permissions of the file are
 * enough; subjects of other jobs stay out of the worker user's reach.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { startEtcd, startNats, type EtcdProcess, type NatsProcess } from '../../src/dev/index.js';
import { createLocalDirectoryBackend, createWorker } from '../../src/sdk/index.js';
import { expectedCounts, sentences } from '../../examples/wordcount/corpus.js';
import {
  INPUT_STREAM,
  OUTPUT_STREAM,
  WORKER_TASKS,
  inputSubject,
  wordCountSpec,
} from '../../examples/wordcount/job.js';
import { taskFor } from '../../examples/wordcount/tasks.js';
import { readStream, verify } from '../../examples/wordcount/verify.js';
import { startTestCoordinator } from '../helpers/coordinator.js';
import { REPO_ROOT, localNatsConfig } from '../helpers/kubernetes-manifests.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { ownServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';
import { MemoryLog } from './worker-harness.js';

const JOB = 'wordcount';
const PASSWORDS = {
  COORDINATOR_PASSWORD: 'coordinator-test-password',
  WORKER_WORDCOUNT_PASSWORD: 'worker-wordcount-test-password',
  SYSTEM_PASSWORD: 'system-test-password',
};
const FEEDER_PASSWORD = 'feeder-test-password';

let dir = '';
let pki: TestPki | undefined;
let etcd: EtcdProcess | undefined;
let nats: NatsProcess | undefined;
const servers = ownServers(() => ({ etcd, nats }));
const file = (name: string): string => join(dir, name);

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ckpt-deploy-nats-'));
  pki = await makeTestPki(dir);
  const conf = await readFile(join(REPO_ROOT, 'deploy/kubernetes/base/nats.conf'), 'utf8');
  const tls = { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca };
  await writeFile(
    file('nats.conf'),
    localNatsConfig(conf, tls, PASSWORDS, { user: 'feeder', password: FEEDER_PASSWORD }),
  );
  await writeFile(file('coordinator.password'), PASSWORDS.COORDINATOR_PASSWORD);
  await writeFile(file('worker.password'), PASSWORDS.WORKER_WORDCOUNT_PASSWORD);
  [etcd, nats] = await Promise.all([startEtcd(), startNats({ extraArgs: ['-c', file('nats.conf')] })]);
});

test.after.always(async () => {
  await Promise.all([etcd?.stop(), nats?.stop()]);
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

async function connectAs(user: string, pass: string): Promise<NatsConnection> {
  return connect({ servers: servers.natsUrl, user, pass, tls: { caFile: (pki as TestPki).ca }, timeout: 5000 });
}

test('the word count runs exactly once as the users of the deployment, refused nothing', async (t) => {
  t.timeout(120_000);
  const c = await startTestCoordinator(t, servers, {
    subjectPrefix: 'ckpt',
    natsUser: 'coordinator',
    natsPasswordFile: file('coordinator.password'),
    natsTlsCaFile: (pki as TestPki).ca,
  });
  const feeder = await connectAs('feeder', FEEDER_PASSWORD);
  t.teardown(() => feeder.close());
  await (await jetstreamManager(feeder)).streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'] });
  await c.client.submitJob({ spec: wordCountSpec(JOB, 300) });

  const log = new MemoryLog('warn');
  const state = await createLocalDirectoryBackend({ dir: file('state'), fsync: false });
  for (const [i, tasks] of WORKER_TASKS.entries()) {
    const worker = createWorker({
      coordinator: c.address,
      nats: [servers.natsUrl],
      jobId: JOB,
      workerId: `worker-${i}`,
      state,
      logger: log.logger,
      // What the Deployment's CKPT_NATS_* variables say; the inbox prefix is the SDK's default for the job.
      natsAuth: { user: 'worker-wordcount', passwordFile: file('worker.password'), tlsCaFile: (pki as TestPki).ca },
    });
    for (const taskId of tasks) worker.addTask(taskId, taskFor(taskId));
    t.teardown(() => worker.stop());
    await worker.start();
  }
  await c.started(JOB);

  const corpus = sentences(300);
  const js = jetstream(feeder);
  for (const [i, sentence] of corpus.entries()) await js.publish(inputSubject(i % 2), sentence);
  const expected = expectedCounts(corpus);
  const wanted = [...expected.values()].reduce((a, b) => a + b, 0);
  await eventually(async () => (await readStream(feeder, OUTPUT_STREAM)).length >= wanted, {
    timeoutMs: 60_000,
    what: 'the word count output',
  });
  const verdict = verify(await readStream(feeder, OUTPUT_STREAM), expected);
  t.deepEqual(verdict.problems, []);
  const refused = log.lines.filter((l) => /permission/i.test(JSON.stringify(l)));
  t.deepEqual(refused, [], 'no component was refused a subject');
});

test("the worker user of the word count cannot reach another job's subjects or speak for the coordinator", async (t) => {
  const nc = await connectAs('worker-wordcount', PASSWORDS.WORKER_WORDCOUNT_PASSWORD);
  t.teardown(() => nc.close());
  const refused = ['ckpt.other.trigger', 'ckpt.other.data.*.*', '_INBOX.>', 'ckpt.>'];
  const closed = await Promise.all(refused.map((subject) => nc.subscribe(subject).closed));
  for (const [i, subject] of refused.entries()) {
    const why = closed[i];
    t.true(why instanceof Error && /permissions violation/i.test(why.message), `subscribe ${subject}`);
  }
  const status: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') status.push(String(s.error));
  })();
  nc.publish('ckpt.wordcount.trigger', 'forged');
  await eventually(() => status.some((s) => /permissions violation for publish/i.test(s)), {
    what: 'the refusal of a forged trigger',
  });
  t.pass();
});
