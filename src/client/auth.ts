/**
 * Bearer-token authentication of client calls. An interceptor rather than
 * call credentials, because grpc-js refuses call credentials on insecure
 * channels and the coordinator may run without TLS on loopback.
 */
import * as grpc from '@grpc/grpc-js';

/** The metadata key of the token. */
export const AUTHORIZATION_METADATA = 'authorization';

/** An interceptor that adds `authorization: Bearer <token>` to every call. */
export function bearerTokenInterceptor(token: string): grpc.Interceptor {
  const value = `Bearer ${token}`;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(AUTHORIZATION_METADATA, value);
        next(metadata, listener);
      },
    });
}
