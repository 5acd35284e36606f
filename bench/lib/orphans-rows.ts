/**
 * The rows of the `orphans` benchmark, one set per kind of store: the
 * object store's as `state.orphans.*` and `state.retained.missing`, the
 * local directory's with `dir` after `orphans` and `retained`.
 */
import type { MissingPiece, Stray } from './orphans-store.js';
import type { RunRecord, RunTargets } from './orphans-run.js';
import { CLEANUP, FAULTS, POLICY, SINK, WORKERS } from './orphans-setup.js';
import type { Row, ScenarioContext } from './row.js';
import { coresText } from './system.js';

/** Where the pieces went. */
export type BackendKind = 'nats-obj' | 'dir';

/** What the count found. */
export interface Count {
  /** The first checkpoint completed without faults: pieces of earlier ones are counted. */
  boundary: number;
  listed: number;
  retainedCheckpoints: number[];
  /** Distinct pieces the retained manifests name, shared ones included. */
  retainedPieces: number;
  /** Pieces of checkpoints before `boundary` that no retained checkpoint names. */
  unnamed: string[];
  /** Pieces of `boundary` and later that no retained checkpoint names: of checkpoints the stop aborted, or released. */
  underWay: string[];
  missing: MissingPiece[];
  stray: Stray;
}

/** The checkpoint id a piece's name carries (`…/<checkpoint>-<epoch>[.ckpt]`); NaN for anything else. */
export function checkpointOf(uri: string): number {
  return Number(/\/(\d+)-\d+(?:\.[a-z]+)?$/.exec(uri)?.[1] ?? NaN);
}

/** The rows of one kind of store. */
export function orphanRows(
  ctx: ScenarioContext,
  kind: BackendKind,
  targets: RunTargets,
  record: RunRecord,
  c: Count,
): Row[] {
  const [orphans, retained] =
    kind === 'dir' ? ['state.orphans.dir', 'state.retained.dir'] : ['state.orphans', 'state.retained'];
  const conditions = setupText(ctx, kind, targets, record, c);
  const row = (id: string, value: number, unit: string, what: string, target: number | null = null): Row => ({
    id,
    value,
    unit,
    target,
    ratio: null,
    met: target === null ? null : value <= target,
    conditions: `${what}; ${conditions}`,
  });
  const stored = new Set(record.uploads.filter((u) => u.phase === 'stored').map((u) => u.uri ?? ''));
  const neverCommitted = [...stored].filter((uri) => record.outcomes.get(checkpointOf(uri))?.state !== 'completed');
  const left = new Set([...c.unnamed, ...c.underWay]);
  const swept = neverCommitted.filter((uri) => !left.has(uri)).length;
  const stray =
    kind === 'dir'
      ? 'temporary files of writes never renamed into place'
      : "chunk messages in the bucket's stream that no object owns";
  return [
    row(
      `${orphans}.left`,
      c.unnamed.length,
      'pieces',
      `the job's pieces of checkpoints before ${c.boundary} (the first completed without faults) that no retained ` +
        `checkpoint (${c.retainedCheckpoints.join(', ')}) names, manifests read through the query API` +
        `${c.unnamed.length > 0 ? `: ${explainUnnamed(c.unnamed, record).join('; ')}` : ''}; ${c.listed} pieces ` +
        `listed, ${c.underWay.length} unnamed of checkpoint ${c.boundary} or later (younger than the grace period) not counted; target 0`,
      0,
    ),
    row(
      `${retained}.missing`,
      c.missing.length,
      'pieces',
      `of the ${c.retainedPieces} pieces the retained manifests name (shared ones included), those missing or ` +
        `failing verification (size and sha256) when read back through the SDK's backend` +
        `${c.missing.length > 0 ? `: ${c.missing.map((m) => `${m.uri} (${m.error})`).join('; ')}` : ''}; target 0`,
      0,
    ),
    row(
      `${orphans}.stray_bytes`,
      c.stray.bytes,
      'bytes',
      `bytes of ${stray} (${c.stray.uploads} uploads: ` +
        `${c.stray.details.join('; ') || 'none'}): uploads killed part-way, which no listing of pieces shows and ` +
        `so no sweep takes; target 0`,
      0,
    ),
    row(`${orphans}.uploaded`, stored.size, 'pieces', 'pieces the workers reported stored over the run'),
    row(
      `${orphans}.swept`,
      swept,
      'pieces',
      `pieces stored for checkpoints that never completed (${neverCommitted.length}) and gone at the end`,
    ),
    row(
      `${orphans}.checkpoints.completed`,
      record.completed,
      'checkpoints',
      'checkpoints completed in the run, with faults and after',
    ),
    row(
      `${orphans}.checkpoints.aborted`,
      record.aborted,
      'checkpoints',
      'checkpoints aborted in the run, with faults and after',
    ),
    row(`${orphans}.kills`, record.kills.length, 'kills', 'worker processes SIGKILLed during an upload'),
  ];
}

function setupText(ctx: ScenarioContext, kind: BackendKind, targets: RunTargets, record: RunRecord, c: Count): string {
  const reasons = new Map<string, number>();
  for (const o of record.outcomes.values())
    if (o.state === 'aborted') reasons.set(o.reason, (reasons.get(o.reason) ?? 0) + 1);
  const unfinished = record.kills.filter((k) => k.unfinished).length;
  const store =
    kind === 'dir'
      ? 'a local directory per worker (fsync on)'
      : `a JetStream Object Store bucket (file storage, 1 replica) on the run's ${ctx.system.nats}`;
  const when =
    kind === 'dir'
      ? `as soon as an upload of its of at least ${targets.killUploadBytes} B started`
      : `once 2 chunks of an upload of its of at least ${targets.killUploadBytes} B were published`;
  return (
    `one job of ${WORKERS} worker processes (SDK workers, forked, Node ${process.version}), each a ticking source ` +
    `and a counting sink with keyed state (${SINK.keys} keys of ${SINK.valueBytes} B per sink), snapshots in ${store}; ` +
    `policy: a checkpoint every ${POLICY.intervalMs} ms, timeout ${POLICY.timeoutMs} ms, ${POLICY.retained} ` +
    `retained, a full piece every ${POLICY.fullEvery}th, pieces uncompressed, failures tolerated; \`ckpt coordinator\` in its own process ` +
    `with --orphan-grace-ms ${CLEANUP.orphanGraceMs} --state-sweep-interval-ms ${CLEANUP.stateSweepIntervalMs}, ` +
    `on the run's ${ctx.system.etcd}; faults: sink-0's upload fails (a decline) on every ${FAULTS.declineEvery}th ` +
    `checkpoint, sink-1's upload stalls ${FAULTS.stallMs} ms after storing on every ${FAULTS.stallEvery}th, ` +
    `${record.kills.length} SIGKILLs of a worker process ${when} (${unfinished} before the upload reported its end), each process started again; then faults off, ` +
    `the workers ran on for ${CLEANUP.orphanGraceMs} + 2 × ${CLEANUP.stateSweepIntervalMs} ms after checkpoint ` +
    `${c.boundary}, the first without faults, completed, then stopped gracefully, and the count followed; over the ` +
    `whole run ${record.completed} checkpoints completed and ${record.aborted} aborted ` +
    `(${[...reasons].map(([r, n]) => `${n} ${r}`).join(', ')}); ${coresText(ctx.system)}`
  );
}

/** For each piece left that no retained checkpoint names: its checkpoint, the outcome, and the faults it met. */
function explainUnnamed(unnamed: readonly string[], record: RunRecord): string[] {
  return unnamed.map((uri) => {
    const ups = record.uploads.filter((u) => u.uri === uri);
    const first = ups[0];
    const id = checkpointOf(uri);
    const outcome = record.outcomes.get(id);
    const killed = record.kills.some((k) => k.upload.checkpointId === id && k.upload.taskId === first?.taskId);
    return (
      `${uri}: checkpoint ${id} ${outcome === undefined ? 'with no outcome seen' : `${outcome.state} ${outcome.reason}`}` +
      `${first?.fault === undefined ? '' : `, upload ${first.fault}`}${killed ? ', its worker killed during it' : ''}` +
      `${ups.length === 0 ? ', never reported stored' : ''}`
    );
  });
}
