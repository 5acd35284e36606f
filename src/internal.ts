/**
 * The internal entry of the `ckpt` package (`ckpt/internal`): everything
 * the package root exports, and the building blocks the CLI, the
 * coordinator, the tests and the benchmarks share. Names here may change
 * in any release; a user's program needs only the root (`index.ts`).
 */
export * from './index.js';

// The module barrels whole: what the root leaves out of them is the SDK's
// machinery (alignment, routing, sink staging, codecs of snapshots and
// keyed state, backend option resolution) and the clients' (unary calls,
// session requests, leader routing, metadata keys, service constructors).
export * from './sdk/index.js';
export * from './client/index.js';

// The NATS bus: connections, control codecs and intake, subjects, headers.
export * from './bus/index.js';

// The worker protocol layer the SDK's worker runs on: session,
// subscriptions, acknowledgement batching and sending.
export * from './worker-protocol/index.js';

// The contract at run time (grpc package definition, codecs), and the
// messages only the SDK and the coordinator handle. Parsing `proto/` is
// left out: the package ships the contract compiled, not its `.proto` files.
export { codec, LOADER_OPTIONS, type Codec } from './proto/index.js';
export { loadPackageDefinition } from './proto/package-definition.js';
export * from './protocol-messages.js';

// Running a coordinator in-process, as the CLI and the demo do.
export * from './config/index.js';
export { runCoordinator, type RunningCoordinator } from './server/run.js';
export { startLocalServers, type LocalServers, type LocalServersOptions } from './dev/index.js';

// A local cluster with TLS and least-privilege users on every link, as
// `make cluster` and the fault suite run it, and the coordinator processes
// started on it.
export {
  freePort,
  killLocalServersSync,
  PKCS12_PASSWORD,
  startSecureCluster,
  trackChild,
  type SecureCluster,
  type SecureClusterOptions,
  type SecureJob,
} from './dev/index.js';
export { coordinatorFlagNames } from './cli/coordinator-flags.js';
export { LOG_LEVELS } from './log/index.js';
