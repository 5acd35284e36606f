/**
 * Adapters from grpc-js handler signatures to async functions: every call
 * is authenticated first, and anything thrown becomes a status with its
 * reason (see `status.ts`).
 */
import type * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import { toStatus } from './status.js';

/** Marks a request whose bytes did not decode, so that the handler can refuse it with a reason. */
const UNDECODABLE = Symbol('undecodable');

interface Undecodable {
  [UNDECODABLE]: string;
}

/**
 * Makes every method of a service decode bad bytes into a marker instead of
 * throwing, so that a malformed request is refused as MALFORMED with reason
 * metadata rather than grpc-js's bare INTERNAL.
 */
export function tolerantDeserializers(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const wrapped: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    wrapped[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return method.requestDeserialize(bytes) as unknown;
        } catch (err) {
          return { [UNDECODABLE]: err instanceof Error ? err.message : String(err) } satisfies Undecodable;
        }
      },
    };
  }
  return wrapped;
}

/** Throws MALFORMED for a request that did not decode. */
export function requireDecoded(request: unknown): void {
  if (typeof request === 'object' && request !== null && UNDECODABLE in request) {
    throw new CkptError(
      'MALFORMED',
      `the request is not a valid protobuf message: ${(request as Undecodable)[UNDECODABLE]}`,
    );
  }
}

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
        requireDecoded(call.request);
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
