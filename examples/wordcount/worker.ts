/**
 * A word count worker process: runs the named tasks until SIGTERM.
 *
 *   node --import tsx examples/wordcount/worker.ts --coordinator 127.0.0.1:7070 \
 *     --nats nats://127.0.0.1:4222 --job wordcount --tasks split-0,count-0 --state-dir /tmp/wc
 *
 * With `--own-streams` it reads and writes the streams named after its job
 * (`wordCountIo` in job.ts: `SENTENCES_<job>`, `WORDCOUNT_<job>`), so that
 * several word count jobs can share one NATS; without, `SENTENCES` and
 * `WORDCOUNT` whatever the job id.
 *
 * With `--standby` it waits, connected, until the worker running those
 * tasks is gone, and then takes them over. With `--metrics HOST:PORT` (or
 * the environment variable CKPT_WORKER_METRICS; port 0 picks a free one)
 * it serves its Prometheus metrics there and prints their URL.
 *
 * Against a secured cluster (`make cluster`): `--tls-ca`, `--tls-cert` and
 * `--tls-key` for the coordinator's mutual TLS (or CKPT_TLS_CA,
 * CKPT_TLS_CLIENT_CERT and CKPT_TLS_CLIENT_KEY), and `--nats-user`,
 * `--nats-password-file`, `--nats-tls-ca-file`, `--nats-tls-cert-file`,
 * `--nats-tls-key-file` and `--nats-inbox-prefix` for NATS.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startupSnapshot } from 'node:v8';
import {
  createLocalDirectoryBackend,
  createLogger,
  createWorker,
  warmUpCodecs,
  type ClientTlsOptions,
  type WorkerOptions,
} from '../../src/index.js';

type NatsAuthOptions = NonNullable<WorkerOptions['natsAuth']>;
import { DEFAULT_JOB_ID, wordCountIo, wordCountSpec } from './job.js';
import { taskFor } from './tasks.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      coordinator: { type: 'string' },
      nats: { type: 'string' },
      job: { type: 'string', default: 'wordcount' },
      tasks: { type: 'string' },
      'state-dir': { type: 'string' },
      'worker-id': { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
      standby: { type: 'boolean', default: false },
      'own-streams': { type: 'boolean', default: false },
      metrics: { type: 'string', default: process.env.CKPT_WORKER_METRICS },
      ...Object.fromEntries(
        [...Object.keys(TLS_FLAGS), ...Object.keys(NATS_FLAGS)].map((f) => [f, { type: 'string' }]),
      ),
    },
  });
  if (!values.coordinator || !values.nats || !values.tasks || !values['state-dir']) {
    throw new Error(
      'usage: worker.ts --coordinator ADDR --nats URLS --tasks T1,T2 --state-dir DIR [--job ID] [--worker-id ID] [--standby] [--own-streams] [--metrics HOST:PORT]',
    );
  }
  const logger = createLogger(values['log-level'] as 'warn', 'wordcount-worker');
  const state = await createLocalDirectoryBackend({ dir: values['state-dir'], logger });
  const flags = values as Record<string, string | boolean | undefined>;
  const tls = pick(flags, TLS_FLAGS);
  const natsAuth = pick(flags, NATS_FLAGS);
  const worker = createWorker({
    // Without flags, the SDK reads the same settings from the environment (CKPT_TLS_*, CKPT_NATS_*).
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
    ...(Object.keys(natsAuth).length > 0 ? { natsAuth } : {}),
    coordinator: values.coordinator,
    nats: values.nats.split(','),
    jobId: values.job,
    ...(values['worker-id'] === undefined ? {} : { workerId: values['worker-id'] }),
    state,
    logger,
    standby: values.standby,
    ...(values.metrics ? { metrics: { listen: values.metrics } } : {}),
  });
  // With --own-streams the job reads and writes streams named after it (`wordCountIo`), so that several word
  // counts can share one NATS; without, SENTENCES and WORDCOUNT whatever the job id.
  const io = wordCountIo(values['own-streams'] ? values.job : DEFAULT_JOB_ID);
  for (const taskId of values.tasks.split(',')) worker.addTask(taskId, taskFor(taskId, io));
  await worker.start();
  if (worker.metricsAddress !== undefined) {
    process.stderr.write(`${worker.workerId} [${values.tasks}]: metrics at http://${worker.metricsAddress}/metrics\n`);
  }
  const stop = (): void => {
    worker.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** The flags of the coordinator's TLS and the option of `WorkerOptions.tls` each sets. */
const TLS_FLAGS: Record<string, keyof ClientTlsOptions> = {
  'tls-ca': 'caFile',
  'tls-cert': 'certFile',
  'tls-key': 'keyFile',
  'tls-server-name': 'serverName',
};

/** The flags of NATS credentials and TLS and the option of `WorkerOptions.natsAuth` each sets. */
const NATS_FLAGS: Record<string, keyof NatsAuthOptions> = {
  'nats-user': 'user',
  'nats-password-file': 'passwordFile',
  'nats-tls-ca-file': 'tlsCaFile',
  'nats-tls-cert-file': 'tlsCertFile',
  'nats-tls-key-file': 'tlsKeyFile',
  'nats-inbox-prefix': 'inboxPrefix',
};

/** The options `flags` gives, by the option each flag sets. */
function pick<K extends string>(
  flags: Record<string, string | boolean | undefined>,
  names: Record<string, K>,
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [flag, option] of Object.entries(names)) {
    const value = flags[flag];
    if (typeof value === 'string' && value !== '') out[option] = value;
  }
  return out;
}

function run(): void {
  main().catch((err: unknown) => {
    process.stderr.write(`worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}

/**
 * Started from the snapshot: tells start-worker.sh that node loaded it, by
 * writing this process's pid into the file CKPT_SNAPSHOT_STARTED_FILE
 * names (the script made it); without that line the script would take the
 * worker for never started and start it again from the bundle.
 */
function runFromSnapshot(): void {
  const marker = process.env.CKPT_SNAPSHOT_STARTED_FILE;
  delete process.env.CKPT_SNAPSHOT_STARTED_FILE;
  if (marker !== undefined && marker !== '') {
    try {
      writeFileSync(marker, `${process.pid}\n`);
    } catch (err) {
      process.stderr.write(
        `worker: cannot write the start marker ${marker}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      process.exit(1);
    }
  }
  run();
}

// Built into a startup snapshot, the loaded modules are the snapshot, and `main` runs in each process started from
// it (`node --snapshot-blob worker.snapshot.blob bundled-worker.js --coordinator ...`, as start-worker.sh does);
// otherwise it runs now.
if (startupSnapshot.isBuildingSnapshot()) {
  warmUpCodecs(wordCountSpec('job', 500, { splits: 2, counts: 2 }));
  startupSnapshot.setDeserializeMainFunction(runFromSnapshot);
} else {
  run();
}
