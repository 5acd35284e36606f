/**
 * A sweep's report as the CollectGarbage call answers it: bounded in the
 * pieces it lists, with counts and bytes over all of them.
 */
import type { CollectGarbageResponse } from '../gen/ckpt/v1/CollectGarbageResponse.js';
import type { GarbageReason as WireReason } from '../gen/ckpt/v1/GarbageReason.js';
import type { GarbageReason } from '../core/state-sweep.js';
import type { GarbageReport } from '../coordinator/state-sweeper.js';

/** Most pieces one response lists; `more` counts the rest. */
export const MAX_LISTED_GARBAGE_PIECES = 10_000;

const WIRE_REASONS: Readonly<Record<GarbageReason, WireReason>> = {
  orphan: 'GARBAGE_REASON_ORPHAN',
  subsumed: 'GARBAGE_REASON_SUBSUMED',
  canceled: 'GARBAGE_REASON_CANCELED',
};

/** The response to a CollectGarbage call that produced `report`. */
export function garbageResponse(report: GarbageReport, dryRun: boolean): CollectGarbageResponse {
  const count = (reason: GarbageReason): number => report.pieces.filter((p) => p.reason === reason).length;
  return {
    dryRun,
    pieces: report.pieces.slice(0, MAX_LISTED_GARBAGE_PIECES).map((p) => ({ ...p, reason: WIRE_REASONS[p.reason] })),
    more: Math.max(0, report.pieces.length - MAX_LISTED_GARBAGE_PIECES),
    orphans: count('orphan'),
    subsumed: count('subsumed'),
    canceled: count('canceled'),
    bytes: report.pieces.reduce((sum, p) => sum + p.sizeBytes, 0),
    unreachable: report.unreachable,
    canceledStateKeptUntilMs: report.canceledStateKeptUntilMs,
  };
}
