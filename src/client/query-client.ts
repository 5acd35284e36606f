/**
 * A typed client of the read-only CheckpointQuery service, following the
 * leader among one or more coordinator addresses.
 */
import { backoffDelayMs, type BackoffConfig } from '../core/backoff.js';
import type { CheckpointQueryClient as GrpcQueryClient } from '../gen/ckpt/v1/CheckpointQuery.js';
import type { ListJobsRequest } from '../gen/ckpt/v1/ListJobsRequest.js';
import type { ListJobsResponse__Output } from '../gen/ckpt/v1/ListJobsResponse.js';
import type { ListCheckpointsRequest } from '../gen/ckpt/v1/ListCheckpointsRequest.js';
import type { ListCheckpointsResponse__Output } from '../gen/ckpt/v1/ListCheckpointsResponse.js';
import type { GetCheckpointRequest } from '../gen/ckpt/v1/GetCheckpointRequest.js';
import type { GetCheckpointResponse__Output } from '../gen/ckpt/v1/GetCheckpointResponse.js';
import type { GetCheckpointStatisticsRequest } from '../gen/ckpt/v1/GetCheckpointStatisticsRequest.js';
import type { GetCheckpointStatisticsResponse__Output } from '../gen/ckpt/v1/GetCheckpointStatisticsResponse.js';
import type { WatchCheckpointsRequest } from '../gen/ckpt/v1/WatchCheckpointsRequest.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { WatchCheckpointsResponse__Output } from '../gen/ckpt/v1/WatchCheckpointsResponse.js';
import { callMetadata, cancelOnAbort, grpcCallOptions, type CallOptions } from './call-options.js';
import { grpcClientOptions, waitForReady, type ClientOptions } from './client-options.js';
import { isCancelled } from './error-reason.js';
import { LeaderRouter, parseAddresses, retriable } from './leader-routing.js';
import { ckptGrpc } from './services.js';
import { unary, type UnaryMethod } from './unary.js';

/** The options of `watchCheckpoints`. */
export interface WatchOptions extends CallOptions {
  /** Called when the coordinator has opened the stream and watches: no event after this one is missed. */
  onOpen?: () => void;
}

/**
 * The CheckpointQuery service. Every method rejects with the grpc-js
 * `ServiceError`; `errorReason(err)` reads the coordinator's reason. Every
 * call is read-only: one that a standby refuses or that cannot reach its
 * coordinator is sent again to the leader, with backoff, within its
 * deadline.
 */
export class QueryClient {
  readonly #router: LeaderRouter<GrpcQueryClient>;

  /** Use `createQueryClient`. */
  constructor(router: LeaderRouter<GrpcQueryClient>) {
    this.#router = router;
  }

  /** The generated grpc-js client of the current address, for calls this class does not wrap. */
  get raw(): GrpcQueryClient {
    return this.#router.client;
  }

  /** The address calls go to now. */
  get address(): string {
    return this.#router.address;
  }

  /** One page of jobs, ordered by id. */
  listJobs(request: ListJobsRequest = {}, options?: CallOptions): Promise<ListJobsResponse__Output> {
    return this.#unary((raw) => raw.listJobs.bind(raw), request, options);
  }

  /** One page of a job's checkpoints, newest first. */
  listCheckpoints(request: ListCheckpointsRequest, options?: CallOptions): Promise<ListCheckpointsResponse__Output> {
    return this.#unary((raw) => raw.listCheckpoints.bind(raw), request, options, request.jobId);
  }

  /** One checkpoint with its per-task figures, and its manifest when completed and retained. */
  getCheckpoint(request: GetCheckpointRequest, options?: CallOptions): Promise<GetCheckpointResponse__Output> {
    return this.#unary((raw) => raw.getCheckpoint.bind(raw), request, options, request.jobId);
  }

  /** A job's checkpoint statistics: counts, figures, latest completed, failed and restored, history. */
  getCheckpointStatistics(
    request: GetCheckpointStatisticsRequest,
    options?: CallOptions,
  ): Promise<GetCheckpointStatisticsResponse__Output> {
    return this.#unary((raw) => raw.getCheckpointStatistics.bind(raw), request, options, request.jobId);
  }

  /**
   * Checkpoint lifecycle events as they happen, as summaries after each
   * change. Ends without error when `options.signal` aborts or the consumer
   * stops iterating (the call is then cancelled); throws the `ServiceError`
   * when the stream fails. A stream refused or unreachable before its first
   * event is opened again at the leader, a few times. `options.onOpen` is
   * called once the coordinator says the stream is live (it sends its
   * response headers once it watches: every event after that is streamed),
   * possibly before any event.
   */
  async *watchCheckpoints(
    request: WatchCheckpointsRequest = {},
    options: WatchOptions = {},
  ): AsyncGenerator<CheckpointSummary__Output, void, undefined> {
    for (let attempt = 0; ; attempt += 1) {
      let received = false;
      try {
        for await (const checkpoint of this.#watchOnce(request, options)) {
          received = true;
          yield checkpoint;
        }
        return;
      } catch (err) {
        if (options.signal?.aborted === true && isCancelled(err)) return;
        const refused = this.#router.follow(err, undefined, request.jobId || undefined);
        if (refused !== undefined) throw refused;
        if (received || attempt >= WATCH_OPEN_ATTEMPTS || !retriable(err, 'idempotent')) throw err;
        await new Promise((resolve) => setTimeout(resolve, backoffDelayMs(WATCH_OPEN_BACKOFF, attempt)));
      }
    }
  }

  /** Resolves when the channel to the current address is connected; rejects after `deadlineMs`. */
  waitForReady(deadlineMs: number): Promise<void> {
    return waitForReady(this.raw, deadlineMs);
  }

  /** Closes every channel. */
  close(): void {
    this.#router.close();
  }

  async *#watchOnce(
    request: WatchCheckpointsRequest,
    options: WatchOptions,
  ): AsyncGenerator<CheckpointSummary__Output, void, undefined> {
    const raw = this.#router.clientOf(request.jobId || undefined);
    const call = raw.watchCheckpoints(request, callMetadata(options), grpcCallOptions(options, 0));
    const { onOpen } = options;
    // A refusal comes as trailers only: response headers mean the coordinator watches.
    if (onOpen !== undefined) call.once('metadata', () => onOpen());
    const stop = cancelOnAbort(call, options.signal);
    try {
      for await (const message of call as AsyncIterable<WatchCheckpointsResponse__Output>) {
        if (message.checkpoint !== null) yield message.checkpoint;
      }
    } finally {
      stop();
      call.cancel();
    }
  }

  #unary<Req, Res>(
    method: (raw: GrpcQueryClient) => UnaryMethod<Req, Res>,
    request: Req,
    options: CallOptions = {},
    jobId?: string,
  ): Promise<Res> {
    const route = jobId === '' ? undefined : jobId;
    return this.#router.call((raw, o) => unary(method(raw), request, o), 'idempotent', options, route);
  }
}

/** How often `watchCheckpoints` opens a stream again before its first event. */
const WATCH_OPEN_ATTEMPTS = 5;
/** The pauses between them: from 50 ms, doubling. */
const WATCH_OPEN_BACKOFF: BackoffConfig = { initialDelayMs: 50, maxDelayMs: 1000, multiplier: 2, jitter: 0.2 };

/**
 * A client of the CheckpointQuery service at `addresses`: one `host:port`,
 * a comma-separated list, or an array; calls follow the leader among them.
 */
export function createQueryClient(addresses: string | readonly string[], options: ClientOptions = {}): QueryClient {
  const { credentials, clientOptions, followUnlistedLeaders } = grpcClientOptions(options);
  const Client = ckptGrpc().CheckpointQuery;
  const router = new LeaderRouter(
    parseAddresses(addresses),
    (address) => new Client(address, credentials, clientOptions),
    options.retry,
    followUnlistedLeaders,
  );
  return new QueryClient(router);
}
