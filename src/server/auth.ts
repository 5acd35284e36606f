/**
 * Bearer-token authentication of gRPC calls. With a token configured,
 * every call must carry `authorization: Bearer <token>`; the comparison
 * takes the same time whatever the given token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { CkptError } from '../core/errors.js';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Returns a check that throws UNAUTHENTICATED for a call without the token; a no-op when `token` is undefined. */
export function createAuthCheck(token: string | undefined): (metadata: grpc.Metadata) => void {
  if (token === undefined) return () => undefined;
  const expected = digest(token);
  return (metadata) => {
    const values = metadata.get('authorization');
    const header = typeof values[0] === 'string' ? values[0] : '';
    const match = /^Bearer (.+)$/i.exec(header);
    if (match === null || !timingSafeEqual(digest(match[1] ?? ''), expected)) {
      throw new CkptError(
        'UNAUTHENTICATED',
        header === '' ? 'the call carries no authorization metadata' : 'the bearer token is not valid',
      );
    }
  };
}
