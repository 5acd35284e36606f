/**
 * Adapters from grpc-js handler signatures to async functions: every call
 * is authenticated first, and anything thrown becomes a status with its
 * reason (see `status.ts`).
 */
import type * as grpc from '@grpc/grpc-js';
import { toStatus } from './status.js';

/** Checks a call's metadata; throws UNAUTHENTICATED. */
export type AuthCheck = (metadata: grpc.Metadata) => void;

/** A unary handler from an async function of the request. */
export function unary<Req, Res>(
  auth: AuthCheck,
  handle: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => {
        auth(call.metadata);
        return handle(call.request, call);
      })
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(toStatus(err)),
      );
  };
}

/** An error object that grpc-js turns into the status it carries. */
export function statusError(err: unknown): Error & Partial<grpc.StatusObject> {
  const status = toStatus(err);
  return Object.assign(new Error(status.details), status);
}
