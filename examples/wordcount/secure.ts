/**
 * The word count on a secured cluster (`startSecureCluster`): what its
 * workers may do on NATS, the stream clients that feed its input and read
 * its output, and the flags that give `worker.ts` its credentials.
 */
import type { SecureCluster, SecureJob } from '../../src/internal.js';
import { INPUT_STREAM, OUTPUT_STREAM, OUTPUT_SUBJECT } from './job.js';

/** The stream client that publishes sentences (and creates the input stream). */
export const FEEDER = 'wordcount-feeder';
/** The stream client that reads the input's progress and the sink's output. */
export const CHECKER = 'wordcount-checker';

/** The job's NATS needs: its sources read the input stream, its sink writes the output stream. */
export function wordCountSecureJob(jobId: string): SecureJob {
  return {
    jobId,
    streams: [
      { stream: INPUT_STREAM, consume: true },
      { stream: OUTPUT_STREAM, create: true, publish: [OUTPUT_SUBJECT] },
    ],
  };
}

/**
 * The feeder and the checker: the feeder creates the input stream and
 * publishes sentences; the checker reads both streams (and creates them
 * where a run wants them replicated before the sink would create its own).
 */
export const WORD_COUNT_CLIENTS = [
  { name: FEEDER, streams: [{ stream: INPUT_STREAM, create: true, publish: ['sentences.*'] }] },
  {
    name: CHECKER,
    streams: [
      { stream: INPUT_STREAM, create: true, get: true },
      { stream: OUTPUT_STREAM, create: true, consume: true },
    ],
  },
] as const;

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
