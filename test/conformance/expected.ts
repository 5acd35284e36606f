/**
 * What each task's report must say at a consistent cut, computed from the
 * sources' positions alone: a counting source that handled n = 1..o sent
 * each n keyed by `n mod K`; every record travels by key over the sorted
 * downstream tasks (FNV-1a key groups, `partitionIndex`), so which records
 * reach which task follows from the graph. Records of one key from one
 * source all take the same path, so the computation works on per-key
 * totals, not on records.
 */
import { partitionIndex } from '../../src/core/key-groups.js';
import type { Behaviour } from './behaviours.js';

/** The values a report carries. */
export interface Values {
  count: number;
  sum: number;
}

/** A task of the job graph. */
export interface GraphTask {
  taskId: string;
  inputs: readonly string[];
}

/** Records of one key: how many and their total. */
interface KeyTotals {
  key: string;
  count: number;
  sum: number;
}

/** The count and sum of the n in [1, offset] with n mod keys === residue. */
export function residueTotals(offset: number, keys: number, residue: number): Values {
  const first = residue === 0 ? keys : residue;
  if (offset < first) return { count: 0, sum: 0 };
  const count = Math.floor((offset - first) / keys) + 1;
  return { count, sum: count * first + (keys * count * (count - 1)) / 2 };
}

/** The job graph's downstream tasks of each task, sorted (the order records are partitioned over). */
export function outputsOf(graph: readonly GraphTask[]): Map<string, string[]> {
  const outputs = new Map<string, string[]>(graph.map((t) => [t.taskId, []]));
  for (const t of graph) for (const input of t.inputs) outputs.get(input)?.push(t.taskId);
  for (const list of outputs.values()) list.sort();
  return outputs;
}

/**
 * The values every task's report must carry when the sources' offsets are
 * `offsets` (a source missing from it counts as 0): a source its offset,
 * a sum its number of keys and total, a sink its number of records and total.
 */
export function expectedValues(
  graph: readonly GraphTask[],
  behaviours: ReadonlyMap<string, Behaviour>,
  offsets: ReadonlyMap<string, number>,
): Map<string, Values> {
  const outputs = outputsOf(graph);
  const received = new Map<string, Map<string, Values>>(graph.map((t) => [t.taskId, new Map()]));
  const deliver = (from: string, totals: KeyTotals, depth: number): void => {
    const targets = outputs.get(from) ?? [];
    if (targets.length === 0 || depth > graph.length) return;
    const to = targets[partitionIndex(totals.key, targets.length)] as string;
    const keys = received.get(to);
    if (keys === undefined) return;
    const before = keys.get(totals.key) ?? { count: 0, sum: 0 };
    keys.set(totals.key, { count: before.count + totals.count, sum: before.sum + totals.sum });
    deliver(to, totals, depth + 1);
  };
  for (const t of graph) {
    const b = behaviours.get(t.taskId);
    if (b?.kind !== 'source') continue;
    const offset = offsets.get(t.taskId) ?? 0;
    for (let r = 0; r < b.keys; r++) {
      const totals = residueTotals(offset, b.keys, r);
      if (totals.count > 0) deliver(t.taskId, { key: String(r), ...totals }, 0);
    }
  }
  const expected = new Map<string, Values>();
  for (const t of graph) {
    const b = behaviours.get(t.taskId);
    const keys = [...(received.get(t.taskId)?.values() ?? [])];
    const total = keys.reduce((a, v) => ({ count: a.count + v.count, sum: a.sum + v.sum }), { count: 0, sum: 0 });
    if (b?.kind === 'source') {
      const offset = offsets.get(t.taskId) ?? 0;
      expected.set(t.taskId, { count: offset, sum: offset });
    } else if (b?.kind === 'sum') {
      expected.set(t.taskId, { count: keys.length, sum: total.sum });
    } else {
      expected.set(t.taskId, total);
    }
  }
  return expected;
}
