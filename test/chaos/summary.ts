/**
 * The summary of a fault-suite run, as printed lines.
 */
import { spread } from './coordinator-log.js';
import { describeHandleCheck } from './handle-check.js';
import type { ChaosReport, JobOutcome } from './run.js';

/** At most this many violations are listed one per line. */
const MAX_LISTED_VIOLATIONS = 30;

/** The summary of `r`, one line per figure; the last line says whether the run passed. */
export function formatSummary(r: ChaosReport): string[] {
  const c = r.config;
  const byKind = new Map<string, number>();
  for (const f of r.faults) byKind.set(f.fault.kind, (byKind.get(f.fault.kind) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const several = r.jobs.length > 1;
  const lines = [
    `seed ${c.seed}, ${c.coordinators} coordinator(s)${c.jobGroups > 1 ? ` sharing ${c.jobGroups} job groups` : ''}, etcd 3 members, NATS ${c.natsCluster ? '3-node cluster' : '1 server'}; ` +
      `${r.jobs.length} job(s) (${r.jobs.map((j) => j.jobId).join(', ')}), ${r.sentences} sentences; ` +
      `run took ${(r.durationMs / 1000).toFixed(1)} s`,
    c.secure
      ? 'links: TLS with client certificates everywhere; NATS and etcd users of least privilege; gRPC mutual TLS'
      : 'links: plain text, no credentials (--insecure)',
    `faults: ${r.faults.length} of ${c.faults} injected: ${kinds}`,
    `recoveries (epoch rises): ${r.recoveries}; fail-overs: ${r.failovers}; leader terms: ${r.terms}`,
    `checkpoints: ${r.committed} committed (etcd); longest time any job went without a commit ` +
      `${(r.longestCommitGapMs / 1000).toFixed(1)} s`,
    `fail-over, leader killed to every job's next commit: ${describeSpread(r.failoverToCommitMs)}`,
    ...r.jobs.flatMap((j) => jobLines(j).map((line) => (several ? `${j.jobId}: ${line}` : line))),
    `etcd history: ${r.history.revisions} revisions, ${r.history.violations.length} violation(s)`,
  ];
  // Error lines are not a job's: every job's figures count all of them.
  const errors = Object.entries(r.jobs[0]?.log.errors ?? {});
  if (errors.length > 0) {
    lines.push(`coordinator error lines: ${errors.map(([m, n]) => `"${m}" ×${n}`).join('; ')}`);
  }
  for (const v of r.violations.slice(0, MAX_LISTED_VIOLATIONS)) lines.push(`  violation: ${v}`);
  if (r.violations.length > MAX_LISTED_VIOLATIONS) {
    lines.push(`  … and ${r.violations.length - MAX_LISTED_VIOLATIONS} more`);
  }
  lines.push(`violations: ${r.violations.length}`);
  return lines;
}

/** The summary lines of one job. */
function jobLines(j: JobOutcome): string[] {
  const aborted = Object.entries(j.log.abortedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  return [
    `recoveries (epoch rises): ${j.recoveries} (recovery starts logged: ${j.log.recoveryStarts}); ` +
      `checkpoints: ${j.committed} committed (etcd); ${j.log.aborted} aborted${aborted === '' ? '' : ` (${aborted})`}; ` +
      `longest time without a commit ${(j.log.longestCommitGapMs / 1000).toFixed(1)} s`,
    `recovery, detection to all tasks ready: ${describeSpread(j.log.recoveryMs)}`,
    `resume after a coordinator start, start to all tasks ready: ${describeSpread(j.log.resumeMs)}`,
    `exactly-once: ${j.exactlyOnce.ok ? 'OK' : 'FAIL'} (${j.exactlyOnce.updates} updates visible, ${j.sentences} sentences)`,
    ...(j.state === undefined ? ['state handles: not checked (see the violations)'] : describeHandleCheck(j.state)),
  ];
}

function describeSpread(values: readonly number[]): string {
  const s = spread(values);
  if (s === undefined) return 'none measured';
  return `min ${s.min} ms, median ${s.median} ms, max ${s.max} ms (${values.length})`;
}
