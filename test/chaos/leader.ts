/**
 * Which coordinator leads, asked from the outside: every coordinator gets a
 * `GetJob`; a standby refuses it with the reason NOT_LEADER, the leader
 * answers (or refuses with a reason about the job), and one that does not
 * answer in time is down or paused.
 *
 * The probes use one plain gRPC client per address: the project's client
 * follows a NOT_LEADER refusal to the leader, which would make every
 * coordinator look like the leader.
 */
import * as grpc from '@grpc/grpc-js';
import { ckptGrpc, REASON_METADATA, unary, type ClientTlsOptions } from '../../src/client/index.js';
import { clientTls } from '../../src/client/tls.js';
import type { CollectGarbageRequest } from '../../src/gen/ckpt/v1/CollectGarbageRequest.js';
import type { CollectGarbageResponse__Output as CollectGarbageResponse } from '../../src/gen/ckpt/v1/CollectGarbageResponse.js';
import type { CoordinatorClient as GrpcCoordinatorClient } from '../../src/gen/ckpt/v1/Coordinator.js';
import type { JobInfo__Output as JobInfo } from '../../src/gen/ckpt/v1/JobInfo.js';
import type { GetJobRequest } from '../../src/gen/ckpt/v1/GetJobRequest.js';
import type { GetJobResponse__Output as GetJobResponse } from '../../src/gen/ckpt/v1/GetJobResponse.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { SubmitJobRequest } from '../../src/gen/ckpt/v1/SubmitJobRequest.js';
import type { SubmitJobResponse__Output as SubmitJobResponse } from '../../src/gen/ckpt/v1/SubmitJobResponse.js';

/** A gRPC client bound to one coordinator, that never moves to another. */
export class ProbeClient {
  readonly #raw: GrpcCoordinatorClient;

  /** With `tls`, over TLS with its client certificate; else in plain text. */
  constructor(
    readonly address: string,
    tls?: ClientTlsOptions,
  ) {
    const secure = tls === undefined ? undefined : clientTls(tls);
    const credentials = secure?.credentials ?? grpc.credentials.createInsecure();
    this.#raw = new (ckptGrpc().Coordinator)(address, credentials, secure?.channelOptions ?? {});
  }

  /** `GetJob` on this coordinator only. */
  async getJob(jobId: string, deadlineMs: number): Promise<JobInfo | undefined> {
    const response = await unary<GetJobRequest, GetJobResponse>(
      (r, m, o, cb) => this.#raw.getJob(r, m, o, cb),
      { jobId },
      { deadlineMs },
    );
    return response.job ?? undefined;
  }

  /** `SubmitJob` on this coordinator only. */
  async submitJob(spec: JobSpec, deadlineMs = 10_000): Promise<void> {
    await unary<SubmitJobRequest, SubmitJobResponse>(
      (r, m, o, cb) => this.#raw.submitJob(r, m, o, cb),
      { spec },
      { deadlineMs },
    );
  }

  /** `CollectGarbage` on this coordinator only: a sweep of the job's state now. */
  collectGarbage(jobId: string, deadlineMs = 10_000): Promise<CollectGarbageResponse> {
    return unary<CollectGarbageRequest, CollectGarbageResponse>(
      (r, m, o, cb) => this.#raw.collectGarbage(r, m, o, cb),
      { jobId, dryRun: false },
      { deadlineMs },
    );
  }

  close(): void {
    this.#raw.close();
  }
}

/** Default deadline of one probe. */
export const DEFAULT_PROBE_DEADLINE_MS = 1_000;

/** The reason a standby gives for refusing a call. */
export const NOT_LEADER = 'NOT_LEADER';

/** What one probe of one coordinator found. */
export type Probe = { role: 'leader'; job: JobInfo | undefined } | { role: 'standby' } | { role: 'down'; why: string };

/** Asks one coordinator for `jobId`. */
export async function probe(
  client: ProbeClient,
  jobId: string,
  deadlineMs = DEFAULT_PROBE_DEADLINE_MS,
): Promise<Probe> {
  try {
    return { role: 'leader', job: await client.getJob(jobId, deadlineMs) };
  } catch (err) {
    return classify(err);
  }
}

function classify(err: unknown): Probe {
  const service = err as Partial<grpc.ServiceError>;
  const metadata = service.metadata instanceof grpc.Metadata ? service.metadata : undefined;
  const reason = metadata?.get(REASON_METADATA)[0]?.toString();
  if (reason === NOT_LEADER || (service.details ?? '').startsWith(NOT_LEADER)) return { role: 'standby' };
  // A reason other than the transport's means the coordinator itself answered about the job.
  if (reason !== undefined && reason !== 'UNAVAILABLE' && reason !== 'SHUTTING_DOWN' && reason !== 'TAKING_OVER') {
    return { role: 'leader', job: undefined };
  }
  return { role: 'down', why: service.details ?? (err as Error).message };
}

/** Probes every coordinator at once. */
export function probeAll(clients: readonly ProbeClient[], jobId: string, deadlineMs?: number): Promise<Probe[]> {
  return Promise.all(clients.map((c) => probe(c, jobId, deadlineMs)));
}

/**
 * The index of the coordinator that answers as leader. With several
 * answering (a deposed leader that has not noticed yet), the one whose job
 * is in the highest epoch; undefined when none answers.
 */
export function leaderOf(probes: readonly Probe[]): number | undefined {
  let best: { index: number; epoch: number } | undefined;
  probes.forEach((p, index) => {
    if (p.role !== 'leader') return;
    const epoch = p.job?.epoch ?? 0;
    if (best === undefined || epoch > best.epoch) best = { index, epoch };
  });
  return best?.index;
}
