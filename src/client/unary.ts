/**
 * Promisified unary calls with deadlines and cancellation.
 */
import type * as grpc from '@grpc/grpc-js';
import { callMetadata, cancelOnAbort, DEFAULT_DEADLINE_MS, grpcCallOptions, type CallOptions } from './call-options.js';

/** A generated unary method in its full four-argument form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

/**
 * Calls `method` and resolves with its response. Rejects with the grpc-js
 * `ServiceError` (read its reason with `errorReason`).
 */
export function unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, options: CallOptions = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    let stop = (): void => {};
    const call = method(
      request,
      callMetadata(options),
      grpcCallOptions(options, DEFAULT_DEADLINE_MS),
      (err, response) => {
        stop();
        if (err !== null) reject(err);
        else if (response === undefined) reject(new Error('empty response'));
        else resolve(response);
      },
    );
    stop = cancelOnAbort(call, options.signal);
  });
}
