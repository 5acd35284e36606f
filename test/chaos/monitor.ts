/**
 * Watching the job from the outside while faults run: every coordinator is
 * probed a few times a second, which tells who leads (and so every
 * fail-over) and how far the job got.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { JobInfo__Output as JobInfo } from '../../src/gen/ckpt/v1/JobInfo.js';
import { leaderOf, probeAll } from './leader.js';
import { JOB_ID, type Stack } from './stack.js';

/** Default time between two probe rounds. */
export const DEFAULT_MONITOR_INTERVAL_MS = 250;

/** What the monitor saw so far. */
export interface MonitorView {
  /** The coordinator that answered as leader last, if any did. */
  leader: number | undefined;
  /** Leadership moving from one coordinator to another, as seen by the probes. */
  failovers: number;
  /** The job as the leader reported it last. */
  job: JobInfo | undefined;
}

/** A running monitor. */
export interface Monitor {
  view(): MonitorView;
  /** Stops probing; resolves when the current round ended. */
  stop(): Promise<void>;
}

/** Starts probing `stack` every `intervalMs`. */
export function startMonitor(stack: Stack, intervalMs = DEFAULT_MONITOR_INTERVAL_MS): Monitor {
  const view: MonitorView = { leader: undefined, failovers: 0, job: undefined };
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const probes = await probeAll(
        stack.coordinators.map((c) => c.client),
        JOB_ID,
      );
      const leader = leaderOf(probes);
      if (leader !== undefined) {
        if (view.leader !== undefined && leader !== view.leader) view.failovers += 1;
        view.leader = leader;
        const probe = probes[leader];
        if (probe?.role === 'leader' && probe.job !== undefined) view.job = probe.job;
      }
      await delay(intervalMs, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();
  return {
    view: () => view,
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
