/**
 * A whole coordinator: etcd store, NATS bus, the protocol, and the gRPC
 * server, started and stopped together. The CLI, the demo and the tests
 * all start a coordinator through `runCoordinator`.
 */
import type { CoordinatorConfig } from '../config/config.js';
import { createNatsBus } from '../bus/index.js';
import { Coordinator } from '../coordinator/coordinator.js';
import type { Logger } from '../log/index.js';
import { createEtcdStore } from '../store/index.js';
import { startGrpcServer } from './grpc-server.js';

/** A running coordinator. */
export interface RunningCoordinator {
  /** host:port of the gRPC server. */
  readonly address: string;
  readonly coordinator: Coordinator;
  /**
   * Graceful stop: stops accepting calls, ends worker sessions, waits for
   * commits in flight and open calls up to the configured grace period,
   * then closes etcd and NATS.
   */
  stop(): Promise<void>;
  /** Immediate stop without waiting, as if the process died (for fault tests). */
  kill(): Promise<void>;
}

/** Connects to etcd and NATS, loads the jobs, and serves gRPC. */
export async function runCoordinator(config: CoordinatorConfig, logger: Logger): Promise<RunningCoordinator> {
  const store = createEtcdStore({
    hosts: config.etcd,
    prefix: config.etcdPrefix,
    requestTimeoutMs: config.etcdTimeoutMs,
    logger,
  });
  let bus;
  try {
    bus = await createNatsBus({ servers: config.nats, subjectPrefix: config.subjectPrefix, logger });
  } catch (err) {
    await store.close();
    throw err;
  }
  const coordinator = new Coordinator({
    store,
    bus,
    logger,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    idBlockSize: config.idBlockSize,
    historySize: config.historySize,
  });
  const closeAdapters = async (): Promise<void> => {
    await Promise.allSettled([bus.close(), store.close()]);
  };
  try {
    await coordinator.start();
    const server = await startGrpcServer({
      coordinator,
      logger,
      listen: config.listen,
      authToken: config.authToken,
      maxMessageBytes: config.maxMessageBytes,
    });
    return {
      address: server.address,
      coordinator,
      async stop() {
        const drained = server.shutdown(config.shutdownGraceMs);
        await coordinator.stop();
        await drained;
        await closeAdapters();
      },
      async kill() {
        server.forceShutdown();
        await coordinator.stop();
        await closeAdapters();
      },
    };
  } catch (err) {
    await coordinator.stop();
    await closeAdapters();
    throw err;
  }
}
