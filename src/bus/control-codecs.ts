/**
 * The protobuf codecs of the control messages on the barrier plane, loaded
 * once and shared by the bus, workers and tests.
 */
import { codec, type Codec } from '../proto/index.js';
import type { Trigger, Trigger__Output } from '../gen/ckpt/v1/Trigger.js';
import type { Barrier, Barrier__Output } from '../gen/ckpt/v1/Barrier.js';
import type { CheckpointComplete, CheckpointComplete__Output } from '../gen/ckpt/v1/CheckpointComplete.js';
import type { CheckpointAbort, CheckpointAbort__Output } from '../gen/ckpt/v1/CheckpointAbort.js';
import type { Recover, Recover__Output } from '../gen/ckpt/v1/Recover.js';

/** One codec per message of `bus.proto`. */
export interface ControlMessageCodecs {
  trigger: Codec<Trigger, Trigger__Output>;
  barrier: Codec<Barrier, Barrier__Output>;
  complete: Codec<CheckpointComplete, CheckpointComplete__Output>;
  abort: Codec<CheckpointAbort, CheckpointAbort__Output>;
  recover: Codec<Recover, Recover__Output>;
}

let codecs: ControlMessageCodecs | undefined;

/** The codecs of `bus.proto`, built on first use. */
export function controlMessageCodecs(): ControlMessageCodecs {
  codecs ??= {
    trigger: codec<Trigger, Trigger__Output>('Trigger'),
    barrier: codec<Barrier, Barrier__Output>('Barrier'),
    complete: codec<CheckpointComplete, CheckpointComplete__Output>('CheckpointComplete'),
    abort: codec<CheckpointAbort, CheckpointAbort__Output>('CheckpointAbort'),
    recover: codec<Recover, Recover__Output>('Recover'),
  };
  return codecs;
}
