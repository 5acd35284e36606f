/**
 * A typed client of the Coordinator service with promise-returning methods.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CoordinatorClient as GrpcCoordinatorClient } from '../gen/ckpt/v1/Coordinator.js';
import type { SubmitJobRequest } from '../gen/ckpt/v1/SubmitJobRequest.js';
import type { SubmitJobResponse__Output } from '../gen/ckpt/v1/SubmitJobResponse.js';
import type { GetJobRequest } from '../gen/ckpt/v1/GetJobRequest.js';
import type { GetJobResponse__Output } from '../gen/ckpt/v1/GetJobResponse.js';
import type { CancelJobRequest } from '../gen/ckpt/v1/CancelJobRequest.js';
import type { CancelJobResponse__Output } from '../gen/ckpt/v1/CancelJobResponse.js';
import type { AcknowledgeCheckpointRequest } from '../gen/ckpt/v1/AcknowledgeCheckpointRequest.js';
import type { AcknowledgeCheckpointResponse__Output } from '../gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { DeclineCheckpointRequest } from '../gen/ckpt/v1/DeclineCheckpointRequest.js';
import type { DeclineCheckpointResponse__Output } from '../gen/ckpt/v1/DeclineCheckpointResponse.js';
import type { TriggerCheckpointRequest } from '../gen/ckpt/v1/TriggerCheckpointRequest.js';
import type { TriggerCheckpointResponse__Output } from '../gen/ckpt/v1/TriggerCheckpointResponse.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import { callMetadata, cancelOnAbort, grpcCallOptions, type CallOptions } from './call-options.js';
import { grpcClientOptions, waitForReady, type ClientOptions } from './client-options.js';
import { ckptGrpc } from './services.js';
import { unary } from './unary.js';

/** The worker session stream of `Attach`. */
export type AttachStream = grpc.ClientDuplexStream<AttachRequest, AttachResponse__Output>;

/**
 * The Coordinator service. Every method rejects with the grpc-js
 * `ServiceError`; `errorReason(err)` reads the coordinator's reason.
 */
export class CoordinatorClient {
  /** The generated grpc-js client, for calls this class does not wrap. */
  readonly raw: GrpcCoordinatorClient;

  /** Use `createCoordinatorClient`. */
  constructor(raw: GrpcCoordinatorClient) {
    this.raw = raw;
  }

  /** Registers a job (a no-op for the same spec again). */
  submitJob(request: SubmitJobRequest, options?: CallOptions): Promise<SubmitJobResponse__Output> {
    return unary((r, m, o, cb) => this.raw.submitJob(r, m, o, cb), request, options);
  }

  /** Returns a job and its checkpointing status. */
  getJob(request: GetJobRequest, options?: CallOptions): Promise<GetJobResponse__Output> {
    return unary((r, m, o, cb) => this.raw.getJob(r, m, o, cb), request, options);
  }

  /** Cancels a job. */
  cancelJob(request: CancelJobRequest, options?: CallOptions): Promise<CancelJobResponse__Output> {
    return unary((r, m, o, cb) => this.raw.cancelJob(r, m, o, cb), request, options);
  }

  /** Acknowledges one checkpoint for one or more tasks of one worker. */
  acknowledgeCheckpoint(
    request: AcknowledgeCheckpointRequest,
    options?: CallOptions,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    return unary((r, m, o, cb) => this.raw.acknowledgeCheckpoint(r, m, o, cb), request, options);
  }

  /** Declines one checkpoint for one or more tasks. */
  declineCheckpoint(
    request: DeclineCheckpointRequest,
    options?: CallOptions,
  ): Promise<DeclineCheckpointResponse__Output> {
    return unary((r, m, o, cb) => this.raw.declineCheckpoint(r, m, o, cb), request, options);
  }

  /**
   * Starts a checkpoint now. With `wait`, pass a `deadlineMs` longer than the
   * checkpoint can take.
   */
  triggerCheckpoint(
    request: TriggerCheckpointRequest,
    options?: CallOptions,
  ): Promise<TriggerCheckpointResponse__Output> {
    return unary((r, m, o, cb) => this.raw.triggerCheckpoint(r, m, o, cb), request, options);
  }

  /**
   * Opens a worker session: the raw duplex stream. Write a hello first, then
   * heartbeats; `end()` closes the session cleanly, `cancel()` drops it.
   * No deadline unless `deadlineMs` is given.
   */
  attach(options: CallOptions = {}): AttachStream {
    const call = this.raw.attach(callMetadata(options), grpcCallOptions(options, 0));
    const stop = cancelOnAbort(call, options.signal);
    call.on('close', stop);
    return call;
  }

  /** Resolves when the channel is connected; rejects after `deadlineMs`. */
  waitForReady(deadlineMs: number): Promise<void> {
    return waitForReady(this.raw, deadlineMs);
  }

  /** Closes the channel; calls in progress fail with CANCELLED or UNAVAILABLE. */
  close(): void {
    this.raw.close();
  }
}

/** A client of the Coordinator service at `address` (`host:port`). */
export function createCoordinatorClient(address: string, options: ClientOptions = {}): CoordinatorClient {
  const { credentials, clientOptions } = grpcClientOptions(options);
  return new CoordinatorClient(new (ckptGrpc().Coordinator)(address, credentials, clientOptions));
}
