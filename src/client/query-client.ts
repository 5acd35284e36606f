/**
 * A typed client of the read-only CheckpointQuery service.
 */
import type { CheckpointQueryClient as GrpcQueryClient } from '../gen/ckpt/v1/CheckpointQuery.js';
import type { ListJobsRequest } from '../gen/ckpt/v1/ListJobsRequest.js';
import type { ListJobsResponse__Output } from '../gen/ckpt/v1/ListJobsResponse.js';
import type { ListCheckpointsRequest } from '../gen/ckpt/v1/ListCheckpointsRequest.js';
import type { ListCheckpointsResponse__Output } from '../gen/ckpt/v1/ListCheckpointsResponse.js';
import type { GetCheckpointRequest } from '../gen/ckpt/v1/GetCheckpointRequest.js';
import type { GetCheckpointResponse__Output } from '../gen/ckpt/v1/GetCheckpointResponse.js';
import type { WatchCheckpointsRequest } from '../gen/ckpt/v1/WatchCheckpointsRequest.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { WatchCheckpointsResponse__Output } from '../gen/ckpt/v1/WatchCheckpointsResponse.js';
import { callMetadata, cancelOnAbort, grpcCallOptions, type CallOptions } from './call-options.js';
import { grpcClientOptions, waitForReady, type ClientOptions } from './client-options.js';
import { isCancelled } from './error-reason.js';
import { ckptGrpc } from './services.js';
import { unary } from './unary.js';

/**
 * The CheckpointQuery service. Every method rejects with the grpc-js
 * `ServiceError`; `errorReason(err)` reads the coordinator's reason.
 */
export class QueryClient {
  /** The generated grpc-js client, for calls this class does not wrap. */
  readonly raw: GrpcQueryClient;

  /** Use `createQueryClient`. */
  constructor(raw: GrpcQueryClient) {
    this.raw = raw;
  }

  /** One page of jobs, ordered by id. */
  listJobs(request: ListJobsRequest = {}, options?: CallOptions): Promise<ListJobsResponse__Output> {
    return unary((r, m, o, cb) => this.raw.listJobs(r, m, o, cb), request, options);
  }

  /** One page of a job's checkpoints, newest first. */
  listCheckpoints(request: ListCheckpointsRequest, options?: CallOptions): Promise<ListCheckpointsResponse__Output> {
    return unary((r, m, o, cb) => this.raw.listCheckpoints(r, m, o, cb), request, options);
  }

  /** One checkpoint, with its manifest when completed and retained. */
  getCheckpoint(request: GetCheckpointRequest, options?: CallOptions): Promise<GetCheckpointResponse__Output> {
    return unary((r, m, o, cb) => this.raw.getCheckpoint(r, m, o, cb), request, options);
  }

  /**
   * Checkpoint lifecycle events as they happen, as summaries after each
   * change. Ends without error when `options.signal` aborts or the consumer
   * stops iterating (the call is then cancelled); throws the `ServiceError`
   * when the stream fails.
   */
  async *watchCheckpoints(
    request: WatchCheckpointsRequest = {},
    options: CallOptions = {},
  ): AsyncGenerator<CheckpointSummary__Output, void, undefined> {
    const call = this.raw.watchCheckpoints(request, callMetadata(options), grpcCallOptions(options, 0));
    const stop = cancelOnAbort(call, options.signal);
    try {
      for await (const message of call as AsyncIterable<WatchCheckpointsResponse__Output>) {
        if (message.checkpoint !== null) yield message.checkpoint;
      }
    } catch (err) {
      if (options.signal?.aborted === true && isCancelled(err)) return;
      throw err;
    } finally {
      stop();
      call.cancel();
    }
  }

  /** Resolves when the channel is connected; rejects after `deadlineMs`. */
  waitForReady(deadlineMs: number): Promise<void> {
    return waitForReady(this.raw, deadlineMs);
  }

  /** Closes the channel. */
  close(): void {
    this.raw.close();
  }
}

/** A client of the CheckpointQuery service at `address` (`host:port`). */
export function createQueryClient(address: string, options: ClientOptions = {}): QueryClient {
  const { credentials, clientOptions } = grpcClientOptions(options);
  return new QueryClient(new (ckptGrpc().CheckpointQuery)(address, credentials, clientOptions));
}
