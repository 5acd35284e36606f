/**
 * What the coordinator keeps in etcd under its prefix, as snapshots to
 * compare: a refused request must leave it as it was, an accepted one may
 * change only the keys of the job it names.
 */
import type { Etcd3 } from 'etcd3';
import { eventually } from '../helpers/wait.js';

/** Every key under a prefix and its value (hex, so that binary values compare exactly). */
export type EtcdSnapshot = ReadonlyMap<string, string>;

/** Reads every key under `prefix`. */
export async function snapshotEtcd(etcd: Etcd3, prefix: string): Promise<EtcdSnapshot> {
  const all = await etcd.getAll().prefix(prefix).buffers();
  return new Map(Object.entries(all).map(([k, v]) => [k, v.toString('hex')]));
}

/** Keys added, removed or changed from `before` to `after`. */
export function changedKeys(before: EtcdSnapshot, after: EtcdSnapshot): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((k) => before.get(k) !== after.get(k)).sort();
}

/** The prefix of a job's keys (storage.proto: `<prefix>jobs/<job>/`). */
export function jobKeys(prefix: string, jobId: string): string {
  return `${prefix}jobs/${jobId}/`;
}

/** Keys of `changed` outside every prefix of `allowed`. */
export function unexplained(changed: readonly string[], allowed: readonly string[]): string[] {
  return changed.filter((k) => !allowed.some((p) => k.startsWith(p)));
}

/**
 * Reads snapshots until two in a row, `gapMs` apart, are equal (what
 * accepted requests set in motion has been written), and returns it.
 */
export async function quietEtcd(etcd: Etcd3, prefix: string, timeoutMs = 10_000, gapMs = 150): Promise<EtcdSnapshot> {
  let last = await snapshotEtcd(etcd, prefix);
  return eventually(
    async () => {
      await new Promise((resolve) => setTimeout(resolve, gapMs));
      const next = await snapshotEtcd(etcd, prefix);
      const same = changedKeys(last, next).length === 0;
      last = next;
      return same ? next : undefined;
    },
    { timeoutMs, pollMs: 0, what: 'etcd to stop changing' },
  );
}
