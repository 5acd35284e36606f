/**
 * What the benchmark ran on, read from the systems themselves for the rows'
 * conditions: the etcd and NATS server versions (etcd's `/version`, NATS's
 * `/varz`) and the cores this process may use.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

/** The servers and the machine a run measured. */
export interface SystemFacts {
  /** e.g. "etcd 3.4.30". */
  etcd: string;
  /** e.g. "nats-server 2.9.20". */
  nats: string;
  /** The cores available to the benchmark's processes. */
  cores: number;
}

/** Where to ask the running servers for their versions. */
export interface SystemSources {
  /** An etcd client URL. */
  etcdClientUrl: string;
  /** The NATS server's monitoring URL. */
  natsMonitorUrl: string;
}

/** Reads the facts; a version that cannot be read is reported as such, never guessed. */
export async function readSystemFacts(sources: SystemSources): Promise<SystemFacts> {
  const [etcd, nats] = await Promise.all([
    versionField(`${sources.etcdClientUrl}/version`, 'etcdserver'),
    versionField(`${sources.natsMonitorUrl}/varz`, 'version'),
  ]);
  return { etcd: `etcd ${etcd}`, nats: `nats-server ${nats}`, cores: availableParallelism() };
}

/** "2 cores" (or "1 core"). */
export function coresText(system: SystemFacts): string {
  return `${system.cores} ${system.cores === 1 ? 'core' : 'cores'}`;
}

async function versionField(url: string, field: string): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const body = (await response.json()) as Record<string, unknown>;
    const value = body[field];
    return typeof value === 'string' && value !== '' ? value : `(version unknown: no ${field} in ${url})`;
  } catch (err) {
    return `(version unknown: ${url}: ${err instanceof Error ? err.message : String(err)})`;
  }
}

/** The machine's CPU time from /proc/stat, in clock ticks: all of it, and the part not idle. */
export interface MachineCpu {
  total: number;
  busy: number;
}

/** Reads the machine's CPU time (every core: user, nice, system, irq, softirq, steal busy; idle and iowait not). */
export async function machineCpu(): Promise<MachineCpu> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (line.startsWith('cpu ') === false || ticks.length < 8 || ticks.some((t) => !Number.isFinite(t))) {
    throw new Error(`/proc/stat does not start with the machine's cpu line: ${line}`);
  }
  const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { total: busy + idle! + iowait!, busy };
}

/** The share of the machine's CPU (every core) busy between two readings, 0 to 1. */
export function busyShare(before: MachineCpu, after: MachineCpu): number {
  const total = after.total - before.total;
  return total > 0 ? (after.busy - before.busy) / total : 0;
}
