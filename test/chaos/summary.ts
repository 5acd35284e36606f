/**
 * The summary of a fault-suite run, as printed lines.
 */
import { spread } from './coordinator-log.js';
import { describeHandleCheck } from './handle-check.js';
import type { ChaosReport } from './run.js';

/** At most this many violations are listed one per line. */
const MAX_LISTED_VIOLATIONS = 30;

/** The summary of `r`, one line per figure; the last line says whether the run passed. */
export function formatSummary(r: ChaosReport): string[] {
  const c = r.config;
  const byKind = new Map<string, number>();
  for (const f of r.faults) byKind.set(f.fault.kind, (byKind.get(f.fault.kind) ?? 0) + 1);
  const kinds = [...byKind].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  const aborted = Object.entries(r.log.abortedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const ids = r.history.jobs.flatMap((j) => j.committedIds);
  const lines = [
    `seed ${c.seed}, ${c.coordinators} coordinator(s), etcd 3 members, NATS ${c.natsCluster ? '3-node cluster' : '1 server'}; ` +
      `${r.sentences} sentences; run took ${(r.durationMs / 1000).toFixed(1)} s`,
    c.secure
      ? 'links: TLS with client certificates everywhere; NATS and etcd users of least privilege; gRPC mutual TLS'
      : 'links: plain text, no credentials (--insecure)',
    `faults: ${r.faults.length} of ${c.faults} injected: ${kinds}`,
    `recoveries (epoch rises): ${r.recoveries} (recovery starts logged: ${r.log.recoveryStarts}); ` +
      `fail-overs: ${r.failovers}; leader terms: ${r.terms}`,
    `checkpoints: ${r.committed} committed (etcd)` +
      (ids.length > 0 ? `, ids ${ids[0]}..${ids[ids.length - 1]}` : '') +
      `; ${r.log.aborted} aborted${aborted === '' ? '' : ` (${aborted})`}; ` +
      `longest time without a commit ${(r.log.longestCommitGapMs / 1000).toFixed(1)} s`,
    `recovery, detection to all tasks ready: ${describeSpread(r.log.recoveryMs)}`,
    `resume after a coordinator start, start to all tasks ready: ${describeSpread(r.log.resumeMs)}`,
    `fail-over, leader killed to the next commit: ${describeSpread(r.failoverToCommitMs)}`,
    `exactly-once: ${r.exactlyOnce.ok ? 'OK' : 'FAIL'} (${r.exactlyOnce.updates} updates visible)`,
    `etcd history: ${r.history.revisions} revisions, ${r.history.violations.length} violation(s)`,
    ...(r.state === undefined ? ['state handles: not checked (see the violations)'] : describeHandleCheck(r.state)),
  ];
  const errors = Object.entries(r.log.errors);
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

function describeSpread(values: readonly number[]): string {
  const s = spread(values);
  if (s === undefined) return 'none measured';
  return `min ${s.min} ms, median ${s.median} ms, max ${s.max} ms (${values.length})`;
}
