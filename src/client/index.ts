/**
 * Typed gRPC clients of the coordinator for TypeScript callers (CLI, tests,
 * demo, worker SDK), and functions that read the coordinator's error reasons.
 */
export { createCoordinatorClient, CoordinatorClient } from './coordinator-client.js';
export type { AttachStream } from './coordinator-client.js';
export { createQueryClient, QueryClient, type WatchOptions } from './query-client.js';
export { DEFAULT_CLIENT_MAX_MESSAGE_BYTES, DEFAULT_KEEPALIVE } from './client-options.js';
export type { ClientOptions, KeepaliveOptions } from './client-options.js';
export { clientTlsFromEnv } from './tls.js';
export type { ClientTlsOptions } from './tls.js';
export { DEFAULT_DEADLINE_MS } from './call-options.js';
export { CONNECT_TIMEOUT_MS, DEFAULT_LEADER_RETRY, parseAddresses, silentAddressError } from './leader-routing.js';
export type { LeaderRetryOptions } from './leader-routing.js';
export type { CallOptions } from './call-options.js';
export { unary } from './unary.js';
export { SessionRequests } from './session-requests.js';
export type { SessionRequestBody } from './session-requests.js';
export type { UnaryMethod } from './unary.js';
export { AUTHORIZATION_METADATA, bearerTokenInterceptor } from './auth.js';
export { ckptGrpc } from './services.js';
export type { CkptGrpcNamespace } from './services.js';
export {
  CHECKPOINT_ID_METADATA,
  EPOCH_METADATA,
  errorInfo,
  FINAL_SESSION_REASONS,
  errorReason,
  isCancelled,
  isServiceError,
  JOB_ID_METADATA,
  LEADER_METADATA,
  REASON_METADATA,
  RETRYABLE_METADATA,
  TASK_ID_METADATA,
  toCkptError,
} from './error-reason.js';
export type { RemoteErrorInfo } from './error-reason.js';
