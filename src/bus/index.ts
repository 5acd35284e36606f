/**
 * The NATS barrier plane: the coordinator's `ControlBus`, the subject
 * scheme, header names, codecs of the control messages, and a connection
 * function for workers.
 */
export { createNatsBus, resolveNatsBusOptions, DEFAULT_CONFIRM_TIMEOUT_MS } from './nats-bus.js';
export type { NatsBus, NatsBusConfig, NatsBusOptions } from './nats-bus.js';
export { connectNats, DEFAULT_RECONNECT_TIME_WAIT_MS } from './connect.js';
export type { ConnectNatsOptions } from './connect.js';
export { controlMessageCodecs } from './control-codecs.js';
export type { ControlMessageCodecs } from './control-codecs.js';
export { BARRIER_HEADER, EPOCH_HEADER, barrierHeaders, epochHeaders, epochOf, isBarrier } from './headers.js';
export { fromNatsError } from './nats-errors.js';
export { LeaderTerms } from './leader-terms.js';
export * from './subjects.js';
