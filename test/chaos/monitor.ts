/**
 * Watching the jobs from the outside while faults run: every coordinator is
 * asked about every job a few times a second, which tells who leads each
 * job (and so every fail-over) and how far each job got.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { JobInfo__Output as JobInfo } from '../../src/gen/ckpt/v1/JobInfo.js';
import { leaderOf, probeAll } from './leader.js';
import type { Stack } from './stack.js';

/** Default time between two probe rounds. */
export const DEFAULT_MONITOR_INTERVAL_MS = 250;

/** What the monitor saw of one job so far. */
export interface JobView {
  /** The coordinator that answered as the job's leader last, if any did. */
  leader: number | undefined;
  /** The job's leadership moving from one coordinator to another, as seen by the probes. */
  failovers: number;
  /** The job as its leader reported it last. */
  job: JobInfo | undefined;
}

/** What the monitor saw so far. */
export interface MonitorView {
  /** By job id, every job of the stack. */
  jobs: ReadonlyMap<string, JobView>;
  /** Leadership moves over every job. */
  failovers: number;
}

/** A running monitor. */
export interface Monitor {
  view(): MonitorView;
  /** The view of one job of the stack. */
  job(jobId: string): JobView;
  /** Stops probing; resolves when the current round ended. */
  stop(): Promise<void>;
}

/** Starts probing `stack` every `intervalMs`. */
export function startMonitor(stack: Stack, intervalMs = DEFAULT_MONITOR_INTERVAL_MS): Monitor {
  const jobs = new Map<string, JobView>(
    stack.jobs.map((j) => [j.jobId, { leader: undefined, failovers: 0, job: undefined }]),
  );
  const clients = stack.coordinators.map((c) => c.client);
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      await Promise.all(
        [...jobs].map(async ([jobId, view]) => {
          const probes = await probeAll(clients, jobId);
          const leader = leaderOf(probes);
          if (leader === undefined) return;
          if (view.leader !== undefined && leader !== view.leader) view.failovers += 1;
          view.leader = leader;
          const probe = probes[leader];
          if (probe?.role === 'leader' && probe.job !== undefined) view.job = probe.job;
        }),
      );
      await delay(intervalMs, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  })();
  const job = (jobId: string): JobView => {
    const view = jobs.get(jobId);
    if (view === undefined) throw new Error(`the monitor does not watch job ${jobId}`);
    return view;
  };
  return {
    view: () => ({ jobs, failovers: [...jobs.values()].reduce((n, v) => n + v.failovers, 0) }),
    job,
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
