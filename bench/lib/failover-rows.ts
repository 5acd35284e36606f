/**
 * The rows of the fail-over scenario: the leader's SIGKILL to the next
 * checkpoint committed by another coordinator, held to its targets, and
 * the parts of that time, reported only.
 */
import { spread } from './percentiles.js';
import type { Row } from './row.js';
import { coresText, type SystemFacts } from './system.js';

/** Target of the p50 from the leader's kill to the next commit by another coordinator. */
export const KILL_TO_COMMIT_P50_TARGET_MS = 2500;
/** Target of the longest time from the leader's kill to the next commit by another coordinator. */
export const KILL_TO_COMMIT_MAX_TARGET_MS = 10_000;

/** One fail-over's figures, in ms, from the coordinators' log timestamps and the kill's time. */
export interface FailoverFigures {
  /** SIGKILL of the leader to the next "checkpoint completed" by another coordinator. */
  killToCommitMs: number;
  /** SIGKILL to the new leader's "elected leader": the dead leader's election key is gone. */
  killToElectedMs: number;
  /** "elected leader" to "coordinator started": the jobs are loaded from etcd. */
  electedToLoadedMs: number;
  /** "coordinator started" to the last of the job's worker processes attached. */
  loadedToAttachedMs: number;
  /** The last worker attached to the checkpoint committed. */
  attachedToCommitMs: number;
}

/** How the figures were measured, for the rows' conditions. */
export interface FailoverSetup {
  /** What ran and how it was killed. */
  setup: string;
  system: SystemFacts;
}

/** The parts, in the order they follow each other. */
const PARTS: ReadonlyArray<{ id: string; pick: (f: FailoverFigures) => number; what: string }> = [
  {
    id: 'kill_to_elected',
    pick: (f) => f.killToElectedMs,
    what: 'SIGKILL of the leader to "elected leader" logged by the next leader',
  },
  {
    id: 'elected_to_loaded',
    pick: (f) => f.electedToLoadedMs,
    what: '"elected leader" to "coordinator started" (jobs loaded from etcd)',
  },
  {
    id: 'loaded_to_attached',
    pick: (f) => f.loadedToAttachedMs,
    what: '"coordinator started" to the last worker process of the job attached',
  },
  {
    id: 'attached_to_commit',
    pick: (f) => f.attachedToCommitMs,
    what: 'the last worker attached to the next "checkpoint completed"',
  },
];

/** The scenario's rows from its kills. */
export function failoverRows(kills: readonly FailoverFigures[], how: FailoverSetup): Row[] {
  const conditions =
    `${how.setup}; ${coresText(how.system)}; ${kills.length} kills; times from the coordinators' log timestamps ` +
    `and the kill's time on the same clock; per kill, kill to commit: ` +
    `${kills.map((k) => k.killToCommitMs).join(', ')} ms`;
  const total = spread(kills.map((k) => k.killToCommitMs));
  const held = (stat: 'p50' | 'max', value: number, target: number): Row => ({
    id: `failover.kill_to_commit.${stat}`,
    value,
    unit: 'ms',
    target,
    ratio: Math.round((value / target) * 1000) / 1000,
    met: value <= target,
    conditions:
      `SIGKILL of the leading coordinator to the next checkpoint committed by another coordinator, ${stat}; ` +
      `target at most ${target} ms; ${conditions}`,
  });
  const reported = PARTS.flatMap(({ id, pick, what }) => {
    const s = spread(kills.map(pick));
    return (['p50', 'max'] as const).map((stat): Row => ({
      id: `failover.${id}.${stat}`,
      value: s[stat],
      unit: 'ms',
      target: null,
      ratio: null,
      met: null,
      conditions: `${what}, ${stat}; ${conditions}`,
    }));
  });
  return [
    held('p50', total.p50, KILL_TO_COMMIT_P50_TARGET_MS),
    held('max', total.max, KILL_TO_COMMIT_MAX_TARGET_MS),
    ...reported,
  ];
}
