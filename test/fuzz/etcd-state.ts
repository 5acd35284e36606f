/**
 * What the coordinator keeps in etcd under its prefix, as snapshots to
 * compare: a refused request must leave it as it was, an accepted one may
 * change only the keys of the job it names. etcd's revision grows with
 * every write, so an unchanged revision proves that nothing changed
 * without reading every key.
 */
import type { Etcd3 } from 'etcd3';

/** Every key under a prefix and its value (hex, so that binary values compare exactly), at a revision. */
export interface EtcdSnapshot {
  readonly revision: string;
  readonly values: ReadonlyMap<string, string>;
}

/** etcd's revision now (the revision of its latest write, under any prefix). */
export async function etcdRevision(etcd: Etcd3, prefix: string): Promise<string> {
  const response = await etcd.getAll().prefix(prefix).limit(1).exec();
  return String(response.header.revision);
}

/** Reads every key under `prefix`. */
export async function snapshotEtcd(etcd: Etcd3, prefix: string): Promise<EtcdSnapshot> {
  const revision = await etcdRevision(etcd, prefix);
  const all = await etcd.getAll().prefix(prefix).buffers();
  return { revision, values: new Map(Object.entries(all).map(([k, v]) => [k, v.toString('hex')])) };
}

/** The state now: `last` itself when nothing was written since it was read. */
export async function etcdNow(etcd: Etcd3, prefix: string, last: EtcdSnapshot): Promise<EtcdSnapshot> {
  if ((await etcdRevision(etcd, prefix)) === last.revision) return last;
  return snapshotEtcd(etcd, prefix);
}

/** Keys added, removed or changed from `before` to `after`. */
export function changedKeys(before: EtcdSnapshot, after: EtcdSnapshot): string[] {
  if (before === after) return [];
  const keys = new Set([...before.values.keys(), ...after.values.keys()]);
  return [...keys].filter((k) => before.values.get(k) !== after.values.get(k)).sort();
}

/** The prefix of a job's keys (storage.proto: `<prefix>jobs/<job>/`). */
export function jobKeys(prefix: string, jobId: string): string {
  return `${prefix}jobs/${jobId}/`;
}

/** Keys of `changed` outside every prefix of `allowed`. */
export function unexplained(changed: readonly string[], allowed: readonly string[]): string[] {
  return changed.filter((k) => !allowed.some((p) => k.startsWith(p)));
}
