/**
 * Adapters from grpc-js handler signatures to async functions: every call
 * is identified first, then its request decoded, then checked against
 * what its caller may do (see `access-control.ts`); anything thrown
 * becomes a status with its reason (see `status.ts`).
 */
import type * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import type { AccessControl, Caller } from './access-control.js';
import type { Action } from './access-policy.js';
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

/**
 * What a method needs: `action` on the job the request names, on every job
 * (`job` returns undefined), or on some job (`job: 'some'`: the handler
 * shows the caller only the jobs it may see).
 */
export interface AccessRule<Req> {
  action: Action;
  job: ((request: Req) => string | undefined) | 'some';
}

/** Throws unless `caller` may make a call of `rule` with `request`. */
export function checkRule<Req>(access: AccessControl, caller: Caller, rule: AccessRule<Req>, request: Req): void {
  if (rule.job === 'some') access.requireSome(caller, rule.action);
  else access.require(caller, rule.action, rule.job(request));
}

/** A unary handler from an async function of the request and its checked caller. */
export function unary<Req, Res>(
  access: AccessControl,
  rule: AccessRule<NoInfer<Req>>,
  handle: (request: Req, caller: Caller, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => {
        const caller = access.identify(call);
        requireDecoded(call.request);
        checkRule(access, caller, rule, call.request);
        return handle(call.request, caller, call);
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
