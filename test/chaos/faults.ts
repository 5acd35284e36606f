/**
 * Injecting one planned fault into a running stack, holding it, and undoing
 * it: a killed process is started again, a paused one continued, a cut or
 * stalled link restored. The undo always runs, so that a fault never
 * outlives its hold.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { ManagedServer, TcpProxy } from '../../src/dev/index.js';
import { leaderOf, probeAll } from './leader.js';
import { describeFault, type LinkScope, type PlannedFault } from './schedule.js';
import type { CoordinatorNode, Stack } from './stack.js';

/** How often a server that will not start again is retried. */
const RESTART_ATTEMPTS = 5;

/** What happened when a fault was injected. */
export interface FaultRecord {
  fault: PlannedFault;
  /** Wall-clock start and end (undo done), ms since the Unix epoch. */
  startedAt: number;
  endedAt: number;
  /** The process or link it hit, resolved at injection time (e.g. which coordinator led). */
  target: string;
}

/** Injects `fault`, holds it for its `holdMs`, undoes it. */
export async function injectFault(stack: Stack, fault: PlannedFault): Promise<FaultRecord> {
  const startedAt = Date.now();
  const target = await apply(stack, fault);
  return { fault, startedAt, endedAt: Date.now(), target };
}

async function apply(stack: Stack, fault: PlannedFault): Promise<string> {
  switch (fault.kind) {
    case 'kill-worker': {
      const { child } = stack.workers[fault.worker]!;
      await child.kill();
      await delay(fault.holdMs);
      child.start();
      return child.spec.label;
    }
    case 'pause-worker': {
      const { child } = stack.workers[fault.worker]!;
      await hold(
        fault.holdMs,
        () => child.pause(),
        () => child.resume(),
      );
      return child.spec.label;
    }
    case 'kill-coordinator': {
      const { child } = await leader(stack, fault);
      await child.kill();
      await delay(fault.holdMs);
      child.start();
      return child.spec.label;
    }
    case 'pause-coordinator': {
      const { child } = await leader(stack, fault);
      await hold(
        fault.holdMs,
        () => child.pause(),
        () => child.resume(),
      );
      return child.spec.label;
    }
    case 'kill-etcd': {
      const member = stack.etcd.members[fault.member]!;
      await bounce(member, fault.holdMs);
      return `etcd ${member.name}`;
    }
    case 'restart-nats': {
      const server = stack.nats[fault.server % stack.nats.length]!;
      await bounce(server, fault.holdMs);
      return server.name;
    }
    case 'cut-etcd':
    case 'cut-nats': {
      const { links, target } = await linksOf(stack, fault.scope, fault);
      const disturb = (): void => links.forEach((l) => (fault.mode === 'cut' ? l.cut() : l.pause()));
      await hold(fault.holdMs, disturb, () => links.forEach((l) => l.restore()));
      return target;
    }
  }
}

/** Runs `start`, waits `ms`, and runs `end` even if the wait was interrupted. */
async function hold(ms: number, start: () => void, end: () => void): Promise<void> {
  start();
  try {
    await delay(ms);
  } finally {
    end();
  }
}

/** SIGKILLs a server, keeps it down for `ms`, and starts it again on its ports and data. */
async function bounce(server: ManagedServer, ms: number): Promise<void> {
  await server.kill('SIGKILL');
  await delay(ms);
  for (let attempt = 1; ; attempt++) {
    try {
      await server.restart();
      return;
    } catch (err) {
      if (attempt >= RESTART_ATTEMPTS) throw err;
      await delay(500);
    }
  }
}

/**
 * The coordinator that leads now the job a leader fault aims at: the jobs
 * take turns by the fault's position in the schedule, so that, where jobs
 * are led by different coordinators, each one's leader is hit. With one
 * coordinator, that one even if it does not answer.
 */
async function leader(stack: Stack, fault: PlannedFault): Promise<CoordinatorNode> {
  if (stack.coordinators.length === 1) return stack.coordinators[0]!;
  const { jobId } = stack.jobs[(fault.n - 1) % stack.jobs.length]!;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const index = leaderOf(
      await probeAll(
        stack.coordinators.map((c) => c.client),
        jobId,
      ),
    );
    if (index !== undefined) return stack.coordinators[index]!;
    if (Date.now() > deadline)
      throw new Error(`no coordinator answers as leader of ${jobId}; cannot aim a leader fault`);
    await delay(200);
  }
}

async function linksOf(
  stack: Stack,
  scope: LinkScope,
  fault: PlannedFault,
): Promise<{ links: TcpProxy[]; target: string }> {
  switch (scope.to) {
    case 'etcd-member':
      return {
        links: stack.coordinators.map((c) => c.etcdLinks[scope.member]!),
        target: `etcd n${scope.member + 1} ↔ every coordinator`,
      };
    case 'leader-etcd': {
      const c = await leader(stack, fault);
      return { links: [...c.etcdLinks], target: `${c.child.spec.label} ↔ etcd` };
    }
    case 'nats-all':
      return {
        links: [...stack.coordinators.flatMap((c) => c.natsLinks), ...stack.workers.flatMap((w) => w.natsLinks)],
        target: 'every process ↔ NATS',
      };
    case 'leader-nats': {
      const c = await leader(stack, fault);
      return { links: [...c.natsLinks], target: `${c.child.spec.label} ↔ NATS` };
    }
    case 'worker-nats': {
      const w = stack.workers[scope.worker]!;
      return { links: [...w.natsLinks], target: `${w.child.spec.label} ↔ NATS` };
    }
  }
}

/** A fault record in one line, for the progress log. */
export function describeRecord(r: FaultRecord): string {
  return `${describeFault(r.fault)} → ${r.target}, ${r.endedAt - r.startedAt} ms`;
}
