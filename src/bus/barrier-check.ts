/**
 * Checking one barrier a worker received on a data subject, shared by the
 * SDK and the simulated worker. A barrier is believed only when it decodes,
 * names the worker's job, comes from the task its subject names as sender,
 * is of the worker's current epoch (in its body and, when given, its
 * header) and names a plausible checkpoint id (see `CheckpointBeliefs`).
 */
import type { Barrier__Output } from '../gen/ckpt/v1/Barrier.js';
import type { CheckpointBeliefs } from './checkpoint-beliefs.js';
import { controlMessageCodecs } from './control-codecs.js';
import type { DropReason } from './drop-log.js';
import type { Edge } from './subjects.js';

/** A barrier that passed every check, or why it did not. */
export type BarrierCheck =
  { ok: true; barrier: Barrier__Output } | { ok: false; reason: DropReason; barrier?: Barrier__Output };

/**
 * Decodes and checks the payload of a barrier that arrived on `edge`;
 * `headerEpoch` is the epoch its headers carry (undefined: none). Never throws.
 */
export function checkBarrier(
  bytes: Uint8Array,
  edge: Edge,
  headerEpoch: number | undefined,
  jobId: string,
  beliefs: CheckpointBeliefs,
): BarrierCheck {
  let barrier: Barrier__Output;
  try {
    barrier = controlMessageCodecs().barrier.decode(bytes);
  } catch {
    return { ok: false, reason: 'undecodable' };
  }
  if (barrier.jobId !== jobId) return { ok: false, reason: 'other-job', barrier };
  if (barrier.fromTaskId !== edge.from) return { ok: false, reason: 'other-sender', barrier };
  const epoch = beliefs.epoch;
  if (barrier.epoch !== epoch || (headerEpoch !== undefined && headerEpoch !== epoch)) {
    return { ok: false, reason: 'other-epoch', barrier };
  }
  if (!beliefs.plausible(barrier.checkpointId)) return { ok: false, reason: 'implausible-id', barrier };
  return { ok: true, barrier };
}
