/**
 * The worker protocol layer: what every worker does to take part in
 * checkpoints, whatever its tasks do. The SDK's worker and the test suite's
 * simulated worker both sit on it:
 *
 * - the session (`WorkerSession`): hello, welcome, heartbeats with task
 *   health, commands, reconnects and leader following, and the leader-term
 *   fencing of welcomes and commands;
 * - the NATS subscriptions (`subscribeControl`, `subscribeData`): control
 *   subjects into the `ControlIntake` (src/bus), which fences control
 *   messages by term, epoch and confirmed ids, and the input edges;
 * - acknowledgements (`AckBatcher`, `createAckSender`): one batch per
 *   checkpoint, split by size, sent in the session or as calls with its
 *   token, retried while the epoch holds.
 */
export { AckBatcher } from './ack-batcher.js';
export type { AckBatch, AckBatcherOptions, TaskResult } from './ack-batcher.js';
export { acknowledgeOnce, createAckSender } from './ack-sender.js';
export type { AckCall, AckSenderOptions } from './ack-sender.js';
export {
  DEFAULT_MAX_ACK_REQUEST_BYTES,
  estimateSnapshotBytes,
  MAX_ACK_SNAPSHOTS_PER_MESSAGE,
  splitBySize,
} from './ack-size.js';
export { awaitWelcome, isFatal, sessionError } from './attach.js';
export { EdgeRecordCounts } from './record-counts.js';
export {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  SESSION_END_TIMEOUT_MS,
  STANDBY_HEARTBEAT_INTERVAL_MS,
  WorkerSession,
} from './session.js';
export type { SessionHandlers, SessionOptions } from './session.js';
export { abortReason, sleep } from './sleep.js';
export { DATA_WILDCARD_THRESHOLD, dataSubscriptions, subscribeControl, subscribeData } from './subscriptions.js';
export type { EdgeHandler, SubscriptionErrorHandler } from './subscriptions.js';
