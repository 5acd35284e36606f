/**
 * A typed client of the Coordinator service with promise-returning methods,
 * following the leader among one or more coordinator addresses.
 */
import type { DeleteSavepointRequest } from '../gen/ckpt/v1/DeleteSavepointRequest.js';
import type { DeleteSavepointResponse__Output } from '../gen/ckpt/v1/DeleteSavepointResponse.js';
import type { ListSavepointsRequest } from '../gen/ckpt/v1/ListSavepointsRequest.js';
import type { ListSavepointsResponse__Output } from '../gen/ckpt/v1/ListSavepointsResponse.js';
import type { TriggerSavepointRequest } from '../gen/ckpt/v1/TriggerSavepointRequest.js';
import type { TriggerSavepointResponse__Output } from '../gen/ckpt/v1/TriggerSavepointResponse.js';
import type * as grpc from '@grpc/grpc-js';
import type { CkptError } from '../core/errors.js';
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
import type { RestoreJobRequest } from '../gen/ckpt/v1/RestoreJobRequest.js';
import type { RestoreJobResponse__Output } from '../gen/ckpt/v1/RestoreJobResponse.js';
import type { CollectGarbageRequest } from '../gen/ckpt/v1/CollectGarbageRequest.js';
import type { CollectGarbageResponse__Output } from '../gen/ckpt/v1/CollectGarbageResponse.js';
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse__Output } from '../gen/ckpt/v1/AttachResponse.js';
import { callMetadata, cancelOnAbort, grpcCallOptions, type CallOptions } from './call-options.js';
import { grpcClientOptions, waitForReady, type ClientOptions } from './client-options.js';
import { LeaderRouter, parseAddresses, settleConnection, type Repeatable } from './leader-routing.js';
import { ckptGrpc } from './services.js';
import { unary, type UnaryMethod } from './unary.js';

/** The worker session stream of `Attach`. */
export type AttachStream = grpc.ClientDuplexStream<AttachRequest, AttachResponse__Output>;

/**
 * The Coordinator service. Every method rejects with the grpc-js
 * `ServiceError`; `errorReason(err)` reads the coordinator's reason.
 *
 * With several addresses, or when a standby names the leader, calls go to
 * the leader: a call refused with NOT_LEADER or SHUTTING_DOWN is sent again
 * there, one refused with TAKING_OVER to the same coordinator, with
 * backoff, within its deadline; so are the idempotent calls
 * (submitJob, getJob, cancelJob, acknowledgeCheckpoint, collectGarbage) after a transport
 * failure. triggerCheckpoint, declineCheckpoint and restoreJob are not
 * repeated when their outcome is unknown.
 */
export class CoordinatorClient {
  readonly #router: LeaderRouter<GrpcCoordinatorClient>;

  /** Use `createCoordinatorClient`. */
  constructor(router: LeaderRouter<GrpcCoordinatorClient>) {
    this.#router = router;
  }

  /** The generated grpc-js client of the current address, for calls this class does not wrap. */
  get raw(): GrpcCoordinatorClient {
    return this.#router.client;
  }

  /** The address calls that name no job go to now. */
  get address(): string {
    return this.#router.address;
  }

  /**
   * The address calls about `jobId` go to now: its job group's leader as
   * far as known (see `LeaderRouter`).
   */
  addressOf(jobId?: string): string {
    return this.#router.addressOf(jobId);
  }

  /** Every address known: the ones given, then leaders named by standbys. */
  get addresses(): readonly string[] {
    return this.#router.addresses;
  }

  /** Registers a job (a no-op for the same spec again). */
  submitJob(request: SubmitJobRequest, options?: CallOptions): Promise<SubmitJobResponse__Output> {
    return this.#unary((raw) => raw.submitJob.bind(raw), request, 'idempotent', options, request.spec?.jobId);
  }

  /** Returns a job and its checkpointing status. */
  getJob(request: GetJobRequest, options?: CallOptions): Promise<GetJobResponse__Output> {
    return this.#unary((raw) => raw.getJob.bind(raw), request, 'idempotent', options, request.jobId);
  }

  /** Cancels a job (a no-op for a canceled one). */
  cancelJob(request: CancelJobRequest, options?: CallOptions): Promise<CancelJobResponse__Output> {
    return this.#unary((raw) => raw.cancelJob.bind(raw), request, 'idempotent', options, request.jobId);
  }

  /** Acknowledges one checkpoint for one or more tasks of one worker (repeating it is a no-op). */
  acknowledgeCheckpoint(
    request: AcknowledgeCheckpointRequest,
    options?: CallOptions,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    return this.#unary((raw) => raw.acknowledgeCheckpoint.bind(raw), request, 'idempotent', options, request.jobId);
  }

  /** Declines one checkpoint for one or more tasks. */
  declineCheckpoint(
    request: DeclineCheckpointRequest,
    options?: CallOptions,
  ): Promise<DeclineCheckpointResponse__Output> {
    return this.#unary((raw) => raw.declineCheckpoint.bind(raw), request, 'once', options, request.jobId);
  }

  /**
   * Starts a checkpoint now. With `wait`, pass a `deadlineMs` longer than the
   * checkpoint can take.
   */
  triggerCheckpoint(
    request: TriggerCheckpointRequest,
    options?: CallOptions,
  ): Promise<TriggerCheckpointResponse__Output> {
    return this.#unary((raw) => raw.triggerCheckpoint.bind(raw), request, 'once', options, request.jobId);
  }

  /**
   * Restores a job to a retained checkpoint (`checkpointId` 0: the latest):
   * every task restores from it in a new epoch. Resolves with that epoch
   * and checkpoint.
   */
  restoreJob(request: RestoreJobRequest, options?: CallOptions): Promise<RestoreJobResponse__Output> {
    return this.#unary((raw) => raw.restoreJob.bind(raw), request, 'once', options, request.jobId);
  }

  /**
   * Takes a savepoint and resolves when it has completed and is stored (or
   * aborted: `savepoint` unset). With `stop`, the job is canceled after it.
   * Give it a deadline as long as a checkpoint of the job takes.
   */
  triggerSavepoint(request: TriggerSavepointRequest, options?: CallOptions): Promise<TriggerSavepointResponse__Output> {
    return this.#unary((raw) => raw.triggerSavepoint.bind(raw), request, 'once', options, request.jobId);
  }

  /** The savepoints of a job, oldest first. */
  listSavepoints(request: ListSavepointsRequest, options?: CallOptions): Promise<ListSavepointsResponse__Output> {
    return this.#unary((raw) => raw.listSavepoints.bind(raw), request, 'idempotent', options, request.jobId);
  }

  /** Deletes a savepoint; `deleted` is false when there was none. */
  deleteSavepoint(request: DeleteSavepointRequest, options?: CallOptions): Promise<DeleteSavepointResponse__Output> {
    return this.#unary((raw) => raw.deleteSavepoint.bind(raw), request, 'idempotent', options, request.ref?.jobId);
  }

  /**
   * Deletes (with `dryRun`, only lists) the job's state pieces no retained
   * checkpoint or savepoint names; repeating it deletes nothing twice.
   */
  collectGarbage(request: CollectGarbageRequest, options?: CallOptions): Promise<CollectGarbageResponse__Output> {
    return this.#unary((raw) => raw.collectGarbage.bind(raw), request, 'idempotent', options, request.jobId);
  }

  /**
   * Opens a worker session on the current address (of `jobId`, the job the
   * hello will name): the raw duplex stream. Write a hello first, then
   * heartbeats; `end()` closes the session cleanly, `cancel()` drops it. No
   * deadline unless `deadlineMs` is given. When it fails,
   * `followLeader(err, from, jobId)` before opening the next one.
   */
  attach(options: CallOptions = {}, jobId?: string): AttachStream {
    const call = this.#router.clientOf(jobId).attach(callMetadata(options), grpcCallOptions(options, 0));
    const stop = cancelOnAbort(call, options.signal);
    call.on('close', stop);
    return call;
  }

  /**
   * After a failed call or session: moves to the leader a NOT_LEADER
   * refusal names, or to the next address when the coordinator named none,
   * is stopping or is unreachable. Returns, without moving, the error to
   * fail with when the named leader may not be followed (one the client
   * was not given, without TLS and a server name). An address
   * whose connection failed is not followed for a few seconds (see
   * `silentAddresses`). `from`: the address the failed call or session went
   * to, by default the current one (of `jobId`). `jobId`: the job the call
   * or session named; only its route moves (see `LeaderRouter`).
   */
  followLeader(err: unknown, from?: string, jobId?: string): CkptError | undefined {
    return this.#router.follow(err, from, jobId);
  }

  /**
   * Addresses whose connection failed without a refusal in the last few
   * seconds (`SILENT_ADDRESS_AVOID_MS`): not followed when a standby names
   * them as the leader, since a paused leader stays named until its lease
   * runs out.
   */
  get silentAddresses(): string[] {
    return this.#router.silentAddresses;
  }

  /**
   * Waits, at most `timeoutMs`, while the channel to the current address
   * (of `jobId`) is connecting; false when it still was (the address accepts connections
   * but does not answer: a paused process). See `settleConnection`.
   */
  settleConnection(timeoutMs: number, jobId?: string): Promise<boolean> {
    return settleConnection(this.#router.clientOf(jobId), timeoutMs);
  }

  /** Resolves when the channel to the current address is connected; rejects after `deadlineMs`. */
  waitForReady(deadlineMs: number): Promise<void> {
    return waitForReady(this.raw, deadlineMs);
  }

  /** Closes every channel; calls in progress fail with CANCELLED or UNAVAILABLE. */
  close(): void {
    this.#router.close();
  }

  #unary<Req, Res>(
    method: (raw: GrpcCoordinatorClient) => UnaryMethod<Req, Res>,
    request: Req,
    repeatable: Repeatable,
    options: CallOptions = {},
    jobId?: string | null,
  ): Promise<Res> {
    const route = jobId === null || jobId === '' ? undefined : jobId;
    return this.#router.call((raw, o) => unary(method(raw), request, o), repeatable, options, route);
  }
}

/**
 * A client of the Coordinator service at `addresses`: one `host:port`, a
 * comma-separated list, or an array; calls follow the leader among them.
 */
export function createCoordinatorClient(
  addresses: string | readonly string[],
  options: ClientOptions = {},
): CoordinatorClient {
  const { credentials, clientOptions, followUnlistedLeaders } = grpcClientOptions(options);
  const Client = ckptGrpc().Coordinator;
  const router = new LeaderRouter(
    parseAddresses(addresses),
    (address) => new Client(address, credentials, clientOptions),
    options.retry,
    followUnlistedLeaders,
  );
  return new CoordinatorClient(router);
}
