/**
 * The NATS barrier plane: the coordinator's `ControlBus`, the subject
 * scheme, header names, codecs of the control messages, a connection
 * function for workers, and what a worker believes of what arrives on NATS
 * (`ControlIntake`, `checkBarrier`, `CheckpointBeliefs`, `TermGate`).
 */
export { createNatsBus, resolveNatsBusOptions, DEFAULT_CONFIRM_TIMEOUT_MS } from './nats-bus.js';
export type { NatsBus, NatsBusConfig, NatsBusOptions } from './nats-bus.js';
export { connectNats, DEFAULT_RECONNECT_TIME_WAIT_MS } from './connect.js';
export type { ConnectNatsOptions } from './connect.js';
export { loadNatsAuth, natsAuthFromEnv, pem, readSecretFile } from './nats-auth.js';
export type { NatsAuthOptions, NatsConnectAuth, OptionNamer } from './nats-auth.js';
export { controlMessageCodecs } from './control-codecs.js';
export type { ControlMessageCodecs } from './control-codecs.js';
export { BARRIER_HEADER, EPOCH_HEADER, barrierHeaders, epochHeaders, epochOf, isBarrier } from './headers.js';
export { fromNatsError } from './nats-errors.js';
export { LeaderTerms } from './leader-terms.js';
export { MAX_HELD_CONTROL_MESSAGES, TermGate } from './term-gate.js';
export type { TermRelease, TermVerdict } from './term-gate.js';
export {
  CheckpointBeliefs,
  isCheckpointId,
  MAX_CHECKPOINT_ID_AHEAD,
  MAX_TRACKED_CHECKPOINTS,
} from './checkpoint-beliefs.js';
export type { AbortRange, CompleteVerdict, ConfirmedIds } from './checkpoint-beliefs.js';
export { ControlIntake, decodeControl } from './control-intake.js';
export type { ControlHandlers, ControlIntakeOptions, ControlMessage } from './control-intake.js';
export { checkBarrier } from './barrier-check.js';
export type { BarrierCheck } from './barrier-check.js';
export { DEFAULT_DROP_LOG_INTERVAL_MS, DropLog } from './drop-log.js';
export type { Drop, DropLogOptions, DropReason } from './drop-log.js';
export { guardedCallback } from './guarded-callback.js';
export type { MsgCallback } from './guarded-callback.js';
export * from './subjects.js';
export { createObjectPieces } from './object-pieces.js';
export { decodeCredit, encodeCredit, MAX_CREDIT_BYTES } from './credit.js';
export type { Credit } from './credit.js';
