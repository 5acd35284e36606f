/**
 * The coordinator's gRPC server: the Coordinator and CheckpointQuery
 * services, the standard health service, and server reflection so that
 * grpcurl and other generic tools work against it.
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { ProtoGrpcType as CoordinatorProto } from '../gen/coordinator.js';
import type { ProtoGrpcType as QueryProto } from '../gen/query.js';
import type { Logger } from '../log/index.js';
import { loadPackageDefinition } from '../proto/package-definition.js';
import type { AccessControl } from './access-control.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import { withAcknowledgementBytes, type AttachLimits } from './attach.js';
import { tolerantDeserializers } from './handlers.js';
import { withEncodedReplies } from './reply-stream.js';
import { coordinatorHandlers } from './coordinator-service.js';
import { queryHandlers, type WatchLimits } from './query-service.js';
import { toStatus } from './status.js';

/** Methods of server reflection: they list every service, so they need a known caller like ckpt's own. */
const REFLECTION_PREFIX = '/grpc.reflection.';

/**
 * A server interceptor that identifies the callers of methods under
 * `prefix` (services whose handlers are not ckpt's own) and refuses
 * unknown ones with UNAUTHENTICATED.
 */
function guardPrefix(prefix: string, access: AccessControl): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            if (!method.path.startsWith(prefix)) return proceed(metadata);
            try {
              access.identify({ metadata, getAuthContext: () => call.getAuthContext() });
            } catch (err) {
              const status = toStatus(err);
              call.sendStatus({
                code: status.code ?? grpc.status.UNAUTHENTICATED,
                details: status.details ?? '',
                metadata: status.metadata ?? null,
              });
              return;
            }
            proceed(metadata);
          },
        }),
    });
}

/** Fully qualified names of the services, as the health service knows them. */
export const SERVICE_NAMES = ['ckpt.v1.Coordinator', 'ckpt.v1.CheckpointQuery'] as const;

/** Options of the gRPC server. */
export interface GrpcServerOptions {
  /** Gives each call the leader's coordinator, or refuses it. */
  coordinators: CoordinatorProvider;
  logger: Logger;
  /** host:port; port 0 picks a free port. */
  listen: string;
  /** Who may call what. */
  access: AccessControl;
  /** The server's credentials (see `serverCredentials`), and for the log whether they are TLS. */
  credentials: { credentials: grpc.ServerCredentials; tls: 'off' | 'on' | 'mutual' };
  maxMessageBytes: number;
  /** Bounds of the streams: hello timeout, unread replies, watchers. */
  limits: Omit<AttachLimits, 'logger'> & WatchLimits;
}

/** A started gRPC server. */
export interface CoordinatorGrpcServer {
  /** host:port it listens on, with the real port. */
  readonly address: string;
  /**
   * Sets the health of the ckpt services: SERVING while this process
   * leads, NOT_SERVING on a standby. They start NOT_SERVING.
   */
  setServing(serving: boolean): void;
  /** Marks the services NOT_SERVING, waits up to `graceMs` for calls in flight, then forces. */
  shutdown(graceMs: number): Promise<void>;
  /** Closes every call and connection at once. */
  forceShutdown(): void;
}

function bind(server: grpc.Server, listen: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

/** Starts serving; resolves once the port is bound. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<CoordinatorGrpcServer> {
  const log = options.logger.child({ component: 'grpc' });
  const definition = loadPackageDefinition();
  const proto = grpc.loadPackageDefinition(definition) as unknown as CoordinatorProto & QueryProto;
  const access = options.access;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    'grpc.keepalive_permit_without_calls': 1,
    interceptors: [guardPrefix(REFLECTION_PREFIX, access)],
  });
  server.addService(
    withAcknowledgementBytes(withEncodedReplies(tolerantDeserializers(proto.ckpt.v1.Coordinator.service))),
    coordinatorHandlers(options.coordinators, access, { ...options.limits, logger: log }),
  );
  server.addService(
    tolerantDeserializers(proto.ckpt.v1.CheckpointQuery.service),
    queryHandlers(options.coordinators, access, options.limits),
  );
  // The server as a whole serves from the start; the ckpt services only while this process leads.
  const health = new HealthImplementation({
    '': 'SERVING',
    ...Object.fromEntries(SERVICE_NAMES.map((s) => [s, 'NOT_SERVING'])),
  });
  let shuttingDown = false;
  health.addToServer(server);
  new ReflectionService(definition).addToServer(server);
  const { credentials, tls } = options.credentials;
  const port = await bind(server, options.listen, credentials);
  const host = options.listen.slice(0, options.listen.lastIndexOf(':'));
  const address = `${host}:${port}`;
  log.info({ address, access: access.mode, tls }, 'gRPC server listening');
  return {
    address,
    setServing(serving) {
      if (shuttingDown) return;
      for (const name of SERVICE_NAMES) health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    },
    async shutdown(graceMs) {
      shuttingDown = true;
      for (const name of ['', ...SERVICE_NAMES]) health.setStatus(name, 'NOT_SERVING');
      const drained = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
      if ((await Promise.race([drained, timer])) === 'timeout') {
        log.warn({ graceMs }, 'calls still open after the grace period; closing them');
        server.forceShutdown();
      }
    },
    forceShutdown() {
      shuttingDown = true;
      server.forceShutdown();
    },
  };
}
