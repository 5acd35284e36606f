/**
 * Who an HTTP request of the JSON API comes from, and which jobs it may
 * see: the request is identified as `AccessControl` identifies a gRPC call,
 * by `authorization: Bearer` or by a client certificate the HTTPS port
 * checked. Refusals are HTTP errors: 401 for credentials that name nobody,
 * 403 for a job the caller may not read.
 */
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';
import type { AccessControl, Caller } from './access-control.js';

/** An HTTP error with its status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What one request may see. */
export interface Viewer {
  /** Throws 403 unless the caller may read `jobId`. */
  require(jobId: string): void;
  sees(jobId: string): boolean;
}

const EVERYONE: Viewer = { require: () => undefined, sees: () => true };

/** The caller of an HTTP request, as `AccessControl` identifies a gRPC call; throws 401. */
function identify(access: AccessControl, req: IncomingMessage): Caller {
  const metadata = new grpc.Metadata();
  const header = req.headers.authorization;
  if (header !== undefined) {
    if (!/^[\x20-\x7e]*$/.test(header)) throw new HttpError(401, 'the bearer token is not valid');
    metadata.set('authorization', header);
  }
  const socket = req.socket;
  // Only a certificate the TLS handshake checked against the client CA names anyone.
  const cert = socket instanceof TLSSocket && socket.authorized ? socket.getPeerCertificate() : undefined;
  try {
    return access.identify({
      metadata,
      getAuthContext: () => (cert === undefined ? {} : { sslPeerCertificate: cert }),
    });
  } catch (err) {
    const why = CkptError.from(err).message.replace(/^UNAUTHENTICATED: /, '');
    throw new HttpError(401, `${why} (send "authorization: Bearer <token>", or a client certificate over HTTPS)`);
  }
}

/** What the caller of `req` may see; throws 401 for credentials that name nobody. Without access control, everything. */
export function viewerOf(access: AccessControl | undefined, req: IncomingMessage): Viewer {
  if (access === undefined || access.mode === 'open') return EVERYONE;
  const caller = identify(access, req);
  return {
    sees: (jobId) => access.allows(caller, 'read', jobId),
    require: (jobId) => {
      try {
        access.require(caller, 'read', jobId);
      } catch (err) {
        throw new HttpError(403, CkptError.from(err).message.replace(/^PERMISSION_DENIED: /, ''));
      }
    },
  };
}
