/**
 * The end-of-run state check's judgement: which pieces a handle names,
 * which reads are violations, and which stored pieces are orphans. Pure
 * functions, no servers.
 */
import test from 'ava';
import type { StateHandle__Output as StateHandle } from '../../src/gen/ckpt/v1/StateHandle.js';
import {
  checkpointIdOf,
  confirmOrphans,
  describeHandleCheck,
  findOrphans,
  judgeReads,
  namedUris,
  piecesOf,
  planReads,
  type HandleCheckReport,
  type PieceOutcome,
  type RetainedManifest,
} from './handle-check.js';

function piece(name: string, shared: StateHandle[] = []): StateHandle {
  const uri = `file:///s/wc/count-0/${name}.snap`;
  return {
    uri,
    sizeBytes: name.length,
    checksum: `sha256:${name}`,
    shared,
    compression: 'STATE_COMPRESSION_NONE',
    rawSizeBytes: 0,
    inFlightRecords: false,
  };
}

const full = piece('1-1');
const delta2 = piece('2-1', [full]);
const delta3 = piece('3-1', [full, piece('2-1')]);

function checkpoint(id: number, state: StateHandle | null, taskId = 'count-0'): RetainedManifest {
  return { kind: 'checkpoint', checkpointId: id, tasks: [{ taskId, state }] };
}

test('a handle names its shared pieces oldest first, then its own; a stateless task names none', (t) => {
  t.deepEqual(
    piecesOf(delta3).map((h) => h.uri),
    [full.uri, piece('2-1').uri, delta3.uri],
  );
  t.deepEqual(piecesOf({ ...piece(''), uri: '' }), []);
  t.deepEqual(piecesOf(null), []);
  t.true(piecesOf(delta2).every((h) => h.shared.length === 0));
});

test('a piece shared by several checkpoints is read once and remembers every namer', (t) => {
  const reads = planReads([checkpoint(2, delta2), checkpoint(3, delta3)]);
  t.deepEqual(
    reads.map((r) => r.handle.uri),
    [full.uri, delta2.uri, delta3.uri],
  );
  t.deepEqual(
    reads[0]?.namedBy.map((n) => n.checkpointId),
    [2, 3],
  );
  t.deepEqual(
    reads[1]?.namedBy.map((n) => n.checkpointId),
    [2, 3],
  );
});

test('two handles of one uri that disagree on the checksum are read as two pieces', (t) => {
  const liar = { ...full, checksum: 'sha256:other' };
  t.is(planReads([checkpoint(1, full), checkpoint(2, liar)]).length, 2);
});

test('the named uris are every piece of every retained manifest, savepoints included', (t) => {
  const savepoint: RetainedManifest = {
    kind: 'savepoint',
    checkpointId: 9,
    tasks: [{ taskId: 'x', state: piece('9-1') }],
  };
  t.deepEqual(
    [...namedUris([checkpoint(3, delta3), savepoint])].sort(),
    [full.uri, piece('2-1').uri, delta3.uri, piece('9-1').uri].sort(),
  );
});

test('a failed read is a violation naming a still-retained checkpoint, its task and the piece', (t) => {
  const [first] = planReads([checkpoint(2, delta2), checkpoint(3, delta3)]);
  const outcomes: PieceOutcome[] = [
    { read: first!, storedBytes: 0, rawBytes: 0, error: `snapshot ${full.uri} is missing` },
  ];
  const verdict = judgeReads(outcomes, (_kind, id) => id === 3);
  t.deepEqual(verdict.violations, [
    `state handle check: checkpoint 3 task count-0 piece ${full.uri}: snapshot ${full.uri} is missing`,
  ]);
  t.is(verdict.dropped, 0);
  const both = judgeReads(outcomes, () => true);
  t.regex(both.violations[0] ?? '', /^state handle check: checkpoint 2 task count-0 .* \(also named by 1 more\)$/);
});

test('a failed read of a piece whose checkpoints were all subsumed meanwhile is only counted', (t) => {
  const reads = planReads([checkpoint(2, delta2)]);
  const outcomes: PieceOutcome[] = reads.map((read) => ({ read, storedBytes: 0, rawBytes: 0, error: 'gone' }));
  t.deepEqual(
    judgeReads(outcomes, () => false),
    { violations: [], dropped: 2 },
  );
});

test('reads that succeeded are never violations', (t) => {
  const outcomes = planReads([checkpoint(2, delta2)]).map((read) => ({ read, storedBytes: 3, rawBytes: 3 }));
  t.deepEqual(
    judgeReads(outcomes, () => false),
    { violations: [], dropped: 0 },
  );
});

test('an orphan is an unnamed piece at least as old as the grace, of a checkpoint that can no longer commit', (t) => {
  const at = (name: string, modifiedAtMs: number) => ({ uri: piece(name).uri, modifiedAtMs });
  const listed = [
    at('1-1', 0),
    at('2-1', 1_000),
    at('3-2', 8_000),
    at('4-2', 8_001),
    at('6-2', 0),
    { uri: 'file:///s/wc/count-0/junk', modifiedAtMs: 0 },
  ];
  const scope = { named: new Set([piece('1-1').uri]), latestCommitted: 5, nowMs: 10_000, graceMs: 2_000 };
  t.deepEqual(
    findOrphans(listed, scope).map((p) => p.uri),
    [piece('2-1').uri, piece('3-2').uri],
  );
});

test('the checkpoint of a piece is read from its name', (t) => {
  t.is(checkpointIdOf(piece('42-7').uri), 42);
  t.is(checkpointIdOf('file:///s/wc/count-0/42-7.snap.abc.tmp'), undefined);
  t.is(checkpointIdOf('not a uri'), undefined);
});

test('an orphan is confirmed only when a later look still finds it stored and unnamed', (t) => {
  const earlier = [
    { uri: 'file:///deleted', modifiedAtMs: 0 },
    { uri: 'file:///named-again', modifiedAtMs: 0 },
    { uri: 'file:///left', modifiedAtMs: 0 },
  ];
  const later = [
    { uri: 'file:///named-again', modifiedAtMs: 0 },
    { uri: 'file:///left', modifiedAtMs: 0 },
    { uri: 'file:///new', modifiedAtMs: 0 },
  ];
  t.deepEqual(
    confirmOrphans(earlier, later, new Set(['file:///named-again'])).map((p) => p.uri),
    ['file:///left'],
  );
});

test('the summary gives the figures and says whether orphans were judged', (t) => {
  const report: HandleCheckReport = {
    manifests: 3,
    piecesChecked: 12,
    bytesRead: 2 * 1024 * 1024,
    rawBytes: 2 * 1024 * 1024,
    dropped: 0,
    storedPieces: 15,
    orphans: 1,
    orphanGraceMs: 2000,
    orphansJudged: false,
    notJudgedWhy: 'no coordinator leads',
    violations: [],
  };
  t.deepEqual(describeHandleCheck(report), [
    'state handles: 3 retained manifests, 12 pieces checked, 2.0 MiB read (2.0 MiB decoded)',
    'state orphans: 1 of 15 stored pieces, past a 2000 ms grace (counted only, not judged (no coordinator leads))',
  ]);
  t.regex(describeHandleCheck({ ...report, orphansJudged: true })[1] ?? '', /judged: each is a violation/);
  t.regex(
    describeHandleCheck({ ...report, bytesRead: 1536, rawBytes: 100 })[0] ?? '',
    /1\.5 KiB read \(100 B decoded\)/,
  );
});
