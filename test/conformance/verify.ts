/**
 * The core check every scenario ends with: each `committed` and `restored`
 * report is compared with what the committed manifest of its checkpoint
 * implies (`expectedValues`), committed checkpoint ids of a task strictly
 * increase, and every committed manifest names every task of the job.
 */
import type { Manifest__Output as Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { Behaviour, Report } from './behaviours.js';
import { expectedValues, type GraphTask, type Values } from './expected.js';

/** The input a counting source's position is recorded under. */
export const COUNTER_INPUT = 'counter';

/** What the check needs to know about the job. */
export interface VerifyInput {
  graph: readonly GraphTask[];
  behaviours: ReadonlyMap<string, Behaviour>;
  /**
   * Unaligned: a non-source snapshot leaves in-flight records out of its values, which are then at most the
   * cut's. So does a snapshot whose piece says it holds in-flight records (an aligned checkpoint that timed out).
   */
  unaligned: boolean;
  reports: readonly Report[];
  /** The manifest of a committed checkpoint, undefined when it is not (or no longer) committed. */
  manifest(checkpointId: number): Promise<Manifest | undefined>;
}

/** The sources' offsets a manifest records. */
export function offsetsOf(manifest: Manifest): Map<string, number> {
  const offsets = new Map<string, number>();
  for (const t of manifest.tasks) {
    const p = t.positions.find((x) => x.input === COUNTER_INPUT);
    if (p !== undefined) offsets.set(t.taskId, Number(p.offset));
  }
  return offsets;
}

/** Every problem found, as sentences naming the task, checkpoint and what differed; empty when all holds. */
export async function verifyReports(input: VerifyInput): Promise<string[]> {
  const problems: string[] = [];
  const expectedByCheckpoint = new Map<number, Map<string, Values>>();
  const lastCommitted = new Map<string, number>();
  const taskIds = new Set(input.graph.map((t) => t.taskId));
  for (const report of input.reports) {
    const what = `${report.event} report of ${report.task} for checkpoint ${report.checkpoint} (epoch ${report.epoch})`;
    if (!taskIds.has(report.task)) {
      problems.push(`${what}: no such task in the job`);
      continue;
    }
    if (report.event === 'committed') {
      const last = lastCommitted.get(report.task) ?? 0;
      if (report.checkpoint <= last) problems.push(`${what}: after a committed report of checkpoint ${last}`);
      lastCommitted.set(report.task, report.checkpoint);
    }
    let expected: Map<string, Values> | undefined;
    let inFlight = false;
    if (report.checkpoint === 0) {
      if (report.event === 'committed') {
        problems.push(`${what}: checkpoint 0 is never committed`);
        continue;
      }
      expected = expectedValues(input.graph, input.behaviours, new Map());
    } else {
      const manifest = await input.manifest(report.checkpoint);
      if (manifest === undefined) {
        problems.push(`${what}: no committed manifest of checkpoint ${report.checkpoint} in etcd`);
        continue;
      }
      const epoch = Number(manifest.epoch);
      if (report.event === 'committed' && epoch !== report.epoch) {
        problems.push(`${what}: the manifest was committed in epoch ${epoch}`);
      }
      // The first checkpoint of a job started from a savepoint keeps the epoch of the savepoint's job.
      if (report.event === 'restored' && epoch >= report.epoch && (manifest.fromSavepoint?.jobId ?? '') === '') {
        problems.push(`${what}: a restore runs in a later epoch than the checkpoint's ${epoch}`);
      }
      inFlight = manifest.tasks.some((t) => t.taskId === report.task && t.state?.inFlightRecords === true);
      expected = expectedByCheckpoint.get(report.checkpoint);
      if (expected === undefined) {
        problems.push(...manifestProblems(manifest, taskIds));
        expected = expectedValues(input.graph, input.behaviours, offsetsOf(manifest));
        expectedByCheckpoint.set(report.checkpoint, expected);
      }
    }
    const want = expected.get(report.task) ?? { count: 0, sum: 0 };
    const source = input.behaviours.get(report.task)?.kind === 'source';
    const bounded = (input.unaligned || inFlight) && !source;
    const ok = bounded
      ? report.count <= want.count && report.sum <= want.sum
      : report.count === want.count && report.sum === want.sum;
    if (!ok) {
      const rule = bounded ? 'at most ' : '';
      problems.push(
        `${what}: count ${report.count} sum ${report.sum}, expected ${rule}count ${want.count} sum ${want.sum} ` +
          `from the sources' positions in the manifest`,
      );
    }
  }
  return [...new Set(problems)];
}

function manifestProblems(manifest: Manifest, taskIds: ReadonlySet<string>): string[] {
  const named = new Set(manifest.tasks.map((t) => t.taskId));
  const missing = [...taskIds].filter((id) => !named.has(id));
  return missing.length === 0
    ? []
    : [`the manifest of checkpoint ${manifest.checkpointId} lacks tasks ${missing.join(', ')}`];
}
