/**
 * `make cluster`: the word count on a local production-like topology, TLS
 * and a user on every link (`startSecureCluster`): 3 etcd members, 3 NATS
 * servers with JetStream, 2 coordinators (gRPC with mutual TLS and an
 * access policy) and the word count's three worker processes, fed a few
 * sentences a second. It prints how to reach everything and runs until
 * SIGINT or SIGTERM; then it stops every process and removes its directory.
 *
 *   node --import tsx examples/wordcount/cluster.ts [--for-seconds N] [--coordinators N]
 *
 * With `--for-seconds N` (or CKPT_CLUSTER_SECONDS) it runs N seconds, then
 * checks as the reader that checkpoints committed (and, under the access
 * policy, that the reader may not trigger one), and exits 0 if so, 1 if not.
 */
import { openSync, closeSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
// A cluster of etcd, NATS and coordinator processes: building blocks of the
// tools, not of a user's pipeline.
import {
  connectNats,
  coordinatorFlagNames,
  createCoordinatorClient,
  createQueryClient,
  errorReason,
  freePort,
  killLocalServersSync,
  loadNatsAuth,
  PKCS12_PASSWORD,
  startSecureCluster,
  trackChild,
  type CoordinatorClient,
  type SecureCluster,
} from '../../src/internal.js';
import { sentences } from './corpus.js';
import { INPUT_STREAM, INPUT_SUBJECTS, WORKER_TASKS, wordCountSpec } from './job.js';
import { FEEDER, WORD_COUNT_CLIENTS, workerSecurityFlags, wordCountSecureJob } from './secure.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'src', 'cli', 'main.ts');
const WORKER = join(REPO, 'examples', 'wordcount', 'worker.ts');
const JOB_ID = 'wordcount';
const USAGE = 'usage: cluster.ts [--for-seconds N] [--coordinators N] [--sentences-per-second N]';
/** The job's checkpoint interval. */
const INTERVAL_MS = 1_000;
/** How long the coordinators may take to elect a leader and the job to run. */
const START_TIMEOUT_MS = 60_000;
/** Checkpoints a `--for-seconds` run must see committed. */
const MIN_COMMITTED = 2;

interface Options {
  forSeconds: number | undefined;
  coordinators: number;
  sentencesPerSecond: number;
}

/** One process of the topology, its output in a log file. */
interface Child {
  label: string;
  process: ChildProcess;
  logFile: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      'for-seconds': { type: 'string', default: process.env.CKPT_CLUSTER_SECONDS },
      coordinators: { type: 'string', default: '2' },
      'sentences-per-second': { type: 'string', default: '20' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const integer = (flag: string, text: string | undefined, min: number, max: number): number => {
    const n = Number(text);
    if (text === undefined || text.trim() === '' || !Number.isSafeInteger(n) || n < min || n > max)
      throw new Error(`--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}\n${USAGE}`);
    return n;
  };
  const forSeconds = values['for-seconds'];
  return {
    forSeconds: forSeconds === undefined || forSeconds === '' ? undefined : integer('for-seconds', forSeconds, 1, 86_400), // prettier-ignore
    coordinators: integer('coordinators', values.coordinators, 1, 5),
    sentencesPerSecond: integer('sentences-per-second', values['sentences-per-second'], 1, 10_000),
  };
}

const started = Date.now();
function log(line: string): void {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);
}

/** Starts a Node process that dies with this one, its stdout and stderr in `logFile`. */
function startNode(label: string, args: readonly string[], logFile: string): Child {
  const fd = openSync(logFile, 'a');
  const argv = ['--import=tsx', ...args];
  const child = existsSync('/usr/bin/setpriv')
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...argv], { stdio: ['ignore', fd, fd] })
    : spawn(process.execPath, argv, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  trackChild(child);
  return { label, process: child, logFile };
}

async function stopChild(child: Child, graceMs = 5_000): Promise<void> {
  const p = child.process;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('close', () => resolve()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

interface Coordinators {
  children: Child[];
  addresses: string[];
  dashboards: string[];
  /** Whether the coordinators run with the access policy. */
  accessPolicy: boolean;
}

async function startCoordinators(cluster: SecureCluster, count: number, logs: string): Promise<Coordinators> {
  const flags = coordinatorFlagNames();
  const accessPolicy = flags.includes('--access-policy');
  if (!accessPolicy) log('this coordinator has no --access-policy: any certificate of the CA may make any call');
  // The dashboard and its API over HTTPS, where callers identify by the same client certificates.
  const https = flags.includes('--http-tls');
  const etcd = cluster.etcd.clientUrls.join(',');
  const nats = cluster.nats.urls.join(',');
  const result: Coordinators = { children: [], addresses: [], dashboards: [], accessPolicy };
  for (let i = 0; i < count; i++) {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const address = `127.0.0.1:${grpcPort}`;
    const args = [
      ...[CLI, 'coordinator', '--etcd', etcd, '--nats', nats],
      ...['--listen', address, '--http-listen', `127.0.0.1:${httpPort}`, '--log-level', 'info'],
      ...cluster.coordinatorFlags(i, { accessPolicy }),
      ...(https ? ['--http-tls', 'on'] : []),
    ];
    result.children.push(startNode(`coordinator-${i}`, args, join(logs, `coordinator-${i}.log`)));
    result.addresses.push(address);
    result.dashboards.push(`${https ? 'https' : 'http'}://127.0.0.1:${httpPort}/`);
  }
  return result;
}

/** Submits the job as the operator, once a coordinator leads. */
async function submit(operator: CoordinatorClient, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      await operator.submitJob({ spec: wordCountSpec(JOB_ID, INTERVAL_MS) }, { deadlineMs: 5_000 });
      return;
    } catch (err) {
      if (/ALREADY_EXISTS|already exists/i.test((err as Error).message)) return;
      if (Date.now() > deadline || signal.aborted)
        throw new Error(`the job could not be submitted: ${(err as Error).message}`, { cause: err });
      await delay(500);
    }
  }
}

/** Feeds `perSecond` sentences a second until `signal` aborts; a failed publication is logged and skipped. */
async function feed(nc: NatsConnection, perSecond: number, signal: AbortSignal): Promise<void> {
  const js = jetstream(nc);
  const corpus = sentences(10_000, 7);
  for (let n = 0, warned = 0; !signal.aborted; n++) {
    const subject = INPUT_SUBJECTS[n % INPUT_SUBJECTS.length] as string;
    await js.publish(subject, corpus[n % corpus.length] as string).catch((err: unknown) => {
      if (Date.now() - warned > 10_000) log(`feeding: ${(err as Error).message}`);
      warned = Date.now();
    });
    await delay(1000 / perSecond, undefined, { signal }).catch(() => undefined);
  }
}

/** Waits until the reader sees the job running. */
async function waitRunning(cluster: SecureCluster, addresses: string[], signal: AbortSignal): Promise<void> {
  const reader = createCoordinatorClient(addresses, { tls: cluster.grpcTls(cluster.reader) });
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (let last = ''; ;) {
      const seen = await reader.getJob({ jobId: JOB_ID }, { deadlineMs: 3_000 }).then(
        ({ job }) => job?.attempt ?? 'no job',
        (err: unknown) => (err as Error).message,
      );
      if (seen === 'JOB_ATTEMPT_RUNNING') return;
      if (Date.now() > deadline || signal.aborted) throw new Error(`the job does not run: ${seen || last}`);
      last = seen;
      await delay(250);
    }
  } finally {
    reader.close();
  }
}

/**
 * Under the access policy, whether the reader is refused a trigger, as a
 * reader must be; undefined when there is no policy to check.
 */
async function readerRefusedTrigger(cluster: SecureCluster, c: Coordinators): Promise<string | undefined> {
  if (!c.accessPolicy) return undefined;
  const reader = createCoordinatorClient(c.addresses, { tls: cluster.grpcTls(cluster.reader) });
  try {
    await reader.triggerCheckpoint({ jobId: JOB_ID }, { deadlineMs: 5_000 });
    return 'accepted';
  } catch (err) {
    return errorReason(err) ?? (err as Error).message;
  } finally {
    reader.close();
  }
}

/** What the reader sees committed: the job's latest checkpoint and the count the query service lists. */
async function committed(cluster: SecureCluster, addresses: string[]): Promise<{ latest: number; listed: number }> {
  const tls = cluster.grpcTls(cluster.reader);
  const reader = createCoordinatorClient(addresses, { tls });
  const query = createQueryClient(addresses, { tls });
  try {
    const { job } = await reader.getJob({ jobId: JOB_ID }, { deadlineMs: 5_000 });
    const { checkpoints } = await query.listCheckpoints({ jobId: JOB_ID }, { deadlineMs: 5_000 });
    const listed = checkpoints.filter((c) => c.state === 'CHECKPOINT_STATE_COMPLETED').length;
    return { latest: Number(job?.latestCheckpointId ?? 0), listed };
  } finally {
    reader.close();
    query.close();
  }
}

function printHowToReach(cluster: SecureCluster, c: Coordinators, logs: string): void {
  const addresses = c.addresses.join(',');
  const cli = (who: 'operator' | 'reader'): string => {
    const id = cluster[who];
    return `node --import tsx src/cli/main.ts --address ${addresses} --tls-ca ${cluster.caFile} --tls-cert ${id.cert} --tls-key ${id.key}`;
  };
  const lines = [
    '',
    `coordinators (gRPC, mutual TLS): ${addresses}`,
    `dashboards: ${c.dashboards.join('  ')}` +
      (c.dashboards[0]?.startsWith('https') === true
        ? ` (a browser shows them with the reader's certificate: import ${join(cluster.dir, 'pki', 'reader.p12')}, password "${PKCS12_PASSWORD}")`
        : ''),
    `  curl --cacert ${cluster.caFile} --cert ${cluster.reader.cert} --key ${cluster.reader.key} ${c.dashboards[0] ?? ''}api/v1/jobs`,
    `etcd (TLS, client certificates, user ckpt on ${cluster.etcdPrefix} only): ${cluster.etcd.clientUrls.join(',')}`,
    `NATS (TLS, client certificates, users per role): ${cluster.nats.urls.join(',')}`,
    `certificates: ${join(cluster.dir, 'pki')} (CA ${cluster.caFile}); passwords: ${join(cluster.dir, 'secrets')}`,
    `access policy: ${cluster.accessPolicyFile}; NATS config: ${join(cluster.dir, 'nats', 'nats.conf')}`,
    `logs: ${logs}`,
    '',
    'as the operator (submit, cancel, trigger, savepoints):',
    `  ${cli('operator')} trigger ${JOB_ID}`,
    'as the reader (queries only):',
    `  ${cli('reader')} checkpoints ${JOB_ID}`,
    '  or with the environment:',
    `  CKPT_ADDRESS=${addresses} CKPT_TLS_CA=${cluster.caFile} CKPT_TLS_CLIENT_CERT=${cluster.reader.cert} CKPT_TLS_CLIENT_KEY=${cluster.reader.key} node --import tsx src/cli/main.ts job ${JOB_ID}`, // prettier-ignore
    '',
  ];
  for (const line of lines) console.log(line);
}

async function main(): Promise<number> {
  const o = options();
  const abort = new AbortController();
  const onSignal = (): void => {
    if (abort.signal.aborted) {
      killLocalServersSync();
      process.exit(130);
    }
    log('stopping (again to force)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  log('making certificates, starting 3 etcd members and 3 NATS servers with TLS and users');
  const cluster = await startSecureCluster({
    jobs: [wordCountSecureJob(JOB_ID)],
    clients: WORD_COUNT_CLIENTS,
    coordinators: o.coordinators,
    signal: abort.signal,
  });
  const children: Child[] = [];
  let feeder: NatsConnection | undefined;
  const feeding = new AbortController();
  let fed: Promise<void> = Promise.resolve();
  try {
    const logs = join(cluster.dir, 'logs');
    await mkdir(logs);
    const coordinators = await startCoordinators(cluster, o.coordinators, logs);
    children.push(...coordinators.children);
    const feederAuth = loadNatsAuth(cluster.clientNatsAuth(FEEDER), (field) => `${FEEDER} ${field}`);
    feeder = await connectNats([...cluster.nats.urls], FEEDER, { auth: feederAuth });
    await (await jetstreamManager(feeder)).streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'], num_replicas: 3 }); // prettier-ignore
    const operator = createCoordinatorClient(coordinators.addresses, { tls: cluster.grpcTls(cluster.operator) });
    try {
      await submit(operator, abort.signal);
    } finally {
      operator.close();
    }
    const stateDir = join(cluster.dir, 'state');
    WORKER_TASKS.forEach((tasks, i) => {
      const args = [
        ...[WORKER, '--coordinator', coordinators.addresses.join(','), '--nats', cluster.nats.urls.join(',')],
        ...['--job', JOB_ID, '--tasks', tasks.join(','), '--state-dir', stateDir, '--worker-id', `worker-${i}`],
        ...workerSecurityFlags(cluster, JOB_ID),
      ];
      children.push(startNode(`worker-${i}`, args, join(logs, `worker-${i}.log`)));
    });
    fed = feed(feeder, o.sentencesPerSecond, AbortSignal.any([feeding.signal, abort.signal]));
    await waitRunning(cluster, coordinators.addresses, abort.signal);
    log(`job ${JOB_ID} runs, a checkpoint every ${INTERVAL_MS} ms, ${o.sentencesPerSecond} sentences a second`);
    printHowToReach(cluster, coordinators, logs);
    if (o.forSeconds === undefined) {
      log('running until Ctrl-C');
      await new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
      return 0;
    }
    await delay(o.forSeconds * 1000, undefined, { signal: abort.signal }).catch(() => undefined);
    const seen = await committed(cluster, coordinators.addresses);
    const refusal = await readerRefusedTrigger(cluster, coordinators);
    const ok =
      seen.latest >= MIN_COMMITTED && seen.listed > 0 && (refusal === undefined || refusal === 'PERMISSION_DENIED');
    const policy = refusal === undefined ? 'no access policy' : `access policy: a trigger by the reader: ${refusal}`;
    console.log(
      `cluster check: ${ok ? 'OK' : 'FAIL'}: latest committed checkpoint ${seen.latest}, ${seen.listed} completed listed, as the reader over mutual TLS; ${policy}`, // prettier-ignore
    );
    return ok ? 0 : 1;
  } finally {
    feeding.abort();
    await fed;
    await feeder?.close().catch(() => undefined);
    await Promise.all(children.map((c) => stopChild(c)));
    await cluster.stop();
    log('stopped; every process ended and the cluster directory removed');
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
    killLocalServersSync();
    process.exit(1);
  },
);
