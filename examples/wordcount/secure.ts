/**
 * The word count on a secured cluster (`startSecureCluster`): what its
 * workers may do on NATS, the stream clients that feed its input and read
 * its output, and the flags that give `worker.ts` its credentials.
 */
import type { SecureCluster, SecureJob } from '../../src/internal.js';
import { DEFAULT_JOB_ID, wordCountIo } from './job.js';

/** The stream client that publishes sentences (and creates the input stream). */
export const FEEDER = 'wordcount-feeder';
/** The stream client that reads the input's progress and the sink's output. */
export const CHECKER = 'wordcount-checker';

/** The job's NATS needs: its sources read the input stream, its sink writes the output stream. */
export function wordCountSecureJob(jobId: string): SecureJob {
  const io = wordCountIo(jobId);
  return {
    jobId,
    streams: [
      { stream: io.inputStream, consume: true },
      { stream: io.outputStream, create: true, publish: [io.outputSubject] },
    ],
  };
}

/**
 * The feeder and the checker of the word count jobs `jobIds`: the feeder
 * creates the input streams and publishes sentences; the checker reads
 * every stream (and creates them where a run wants them replicated before
 * the sink would create its own).
 */
export function wordCountClients(jobIds: readonly string[]) {
  const ios = jobIds.map(wordCountIo);
  return [
    {
      name: FEEDER,
      streams: ios.map((io) => ({ stream: io.inputStream, create: true, publish: [io.inputFilter] })),
    },
    {
      name: CHECKER,
      streams: ios.flatMap((io) => [
        { stream: io.inputStream, create: true, get: true },
        { stream: io.outputStream, create: true, consume: true },
      ]),
    },
  ] as const;
}

/** The feeder and the checker of the reference job. */
export const WORD_COUNT_CLIENTS = wordCountClients([DEFAULT_JOB_ID]);

/** The flags of `worker.ts` that give a worker of `jobId` its certificate and NATS user. */
export function workerSecurityFlags(cluster: SecureCluster, jobId: string): string[] {
  const tls = cluster.grpcTls(cluster.worker(jobId));
  const nats = cluster.workerNatsAuth(jobId);
  const pairs: Array<[string, string | undefined]> = [
    ['--tls-ca', tls.caFile],
    ['--tls-cert', tls.certFile],
    ['--tls-key', tls.keyFile],
    ['--nats-user', nats.user],
    ['--nats-password-file', nats.passwordFile],
    ['--nats-tls-ca-file', nats.tlsCaFile],
    ['--nats-tls-cert-file', nats.tlsCertFile],
    ['--nats-tls-key-file', nats.tlsKeyFile],
    ['--nats-inbox-prefix', nats.inboxPrefix],
  ];
  return pairs.flatMap(([flag, value]) => (value === undefined ? [] : [flag, value]));
}
