/**
 * Scenario `state`, incremental checkpoints of keyed state: a task's keyed
 * state of 256 MiB (2 MiB with `--quick`), 1 % of its keys changed between
 * checkpoints, driven through the SDK's own checkpoint path
 * (`IncrementalState`, `uploadSnapshot`, `restoredState`) into the local
 * directory backend and the JetStream Object Store backend, each in a
 * forked process of its own (`lib/state-child.ts`). It measures what a
 * delta uploads against a full piece, the synchronous and asynchronous
 * parts of both, and a restore of a chain (a full and its deltas) against
 * the plain read of the same pieces; every restored state must equal the
 * checkpointed one, or the scenario fails.
 */
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkBenchChild } from './lib/bench-child.js';
import { median, significant } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import type { StateRunPlan, StateRunResult } from './lib/state-child.js';
import { ENTRY_BYTES } from './lib/state-data.js';
import { coresText } from './lib/system.js';
import { isMain, runStandalone } from './standalone.js';

const STATE_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'state-child.ts');
const MIB = 1024 * 1024;
/** The heap of the measuring process: the state, its restored copy and a full piece's transient strings fit. */
const CHILD_HEAP_MB = 4096;
/** At most 5 % of a full piece uploaded per delta checkpoint with 1 % of the keys changed. */
const UPLOAD_RATIO_TARGET = 0.05;
/** A restore takes at most twice the plain read and verification of the same pieces. */
const RESTORE_OVER_FLOOR_TARGET = 2;
const SEED = 0x5eed;

/** A backend measured, and the prefix of its rows. */
interface BackendRun {
  backend: StateRunPlan['backend'];
  prefix: string;
  text: string;
}

/** Measures `state.*` (local directory) and `state.obj.*` (object store). */
export const state: Scenario = async (ctx) => {
  const quick = ctx.quick === true;
  const sizes = {
    stateBytes: (quick ? 2 : 256) * MIB,
    changeShare: 0.01,
    fulls: 3,
    deltas: quick ? 5 : 7,
    restores: quick ? 3 : 5,
    seed: SEED,
  };
  const backends: BackendRun[] = [
    {
      backend: 'dir',
      prefix: 'state',
      text: `local directory backend with fsync on (each piece's file and its directory, as in production), under ${tmpdir()}`,
    },
    {
      backend: 'nats-obj',
      prefix: 'state.obj',
      text:
        `JetStream Object Store backend (file storage, 1 replica, default 128 KiB chunks) on the run's local ` +
        `${ctx.system.nats}, which does not fsync each write (its default)`,
    },
  ];
  const rows: Row[] = [];
  for (const b of backends) {
    const plan: StateRunPlan = {
      ...sizes,
      backend: b.backend,
      dir: tmpdir(),
      nats: ctx.nats,
      bucket: `${ctx.prefix}-state`,
    };
    const load = loadavg()[0] ?? 0;
    const result = await measure(plan, b.backend);
    ctx.log(summaryLine(b.backend, result));
    rows.push(
      ...stateRows({ ...b, text: `${b.text}; load average ${load.toFixed(1)} when it began` }, plan, result, ctx),
    );
  }
  return rows;
};

/** Runs `plan` in a forked process with its own heap limit. */
async function measure(plan: StateRunPlan, label: string): Promise<StateRunResult> {
  const child = forkBenchChild(
    `state child (${label})`,
    STATE_CHILD,
    [],
    [`--max-old-space-size=${CHILD_HEAP_MB}`, '--expose-gc'],
  );
  try {
    return await child.request<StateRunResult>({ kind: 'run', plan });
  } finally {
    await child.stop();
  }
}

function summaryLine(backend: string, r: StateRunResult): string {
  const ms = (xs: readonly number[]): string => xs.map((x) => x.toFixed(0)).join('/');
  return (
    `${backend}: ${r.keys} keys built in ${r.buildMs.toFixed(0)} ms; checkpoints ` +
    r.checkpoints
      .map((c) => `${c.kind} ${c.persistedBytes} B ${c.syncMs.toFixed(0)}+${c.asyncMs.toFixed(0)} ms`)
      .join(', ') +
    `; restore ${ms(r.restoreMs)} ms, floor ${ms(r.floorMs)} ms, then reading every value ${ms(r.readAllMs)} ms; ${r.restoreMs.length + 1} restores matched ${r.digest.sha256.slice(0, 12)}`
  );
}

function stateRows(b: BackendRun, plan: StateRunPlan, r: StateRunResult, ctx: ScenarioContext): Row[] {
  const fulls = r.checkpoints.filter((c) => c.kind === 'full');
  const deltas = r.checkpoints.filter((c) => c.kind === 'delta');
  const stateSize = fulls[0]?.stateSizeBytes ?? 0;
  const setup =
    `keyed state of ${r.keys} keys, ${stateSize} bytes logical (state_size_bytes; ${ENTRY_BYTES} per entry: a 7-byte ` +
    `key and a JSON string of base64 characters from a seeded PRNG, nearly incompressible), ${r.changedKeys} keys ` +
    `(${plan.changeShare * 100} %) set to new values between checkpoints; ${plan.fulls} full checkpoints, then ` +
    `${plan.deltas} deltas, each completed before the next, so each delta builds on the one before; one task through ` +
    `the SDK's IncrementalState.snapshot, uploadSnapshot, restoredState and IncrementalState.restore, in one forked ` +
    `Node ${process.version} process (--max-old-space-size=${CHILD_HEAP_MB}, garbage collected before each timed call); ` +
    `pieces compressed with the default codec (LZ4; a piece is stored as it is when that is not smaller) and decompressed on restore; ${b.text}; ${coresText(ctx.system)}, shared with the run's etcd and NATS`;
  const ms = (xs: readonly number[]): string => xs.map((x) => x.toFixed(1)).join('/');
  const timing = (id: string, xs: readonly number[], what: string): Row => ({
    id: `${b.prefix}.${id}`,
    value: significant(median(xs)),
    unit: 'ms',
    target: null,
    ratio: null,
    met: null,
    conditions: `${what}, median of ${xs.length} (${ms(xs)} ms); ${setup}`,
  });
  const sync = 'synchronous part: the IncrementalState.snapshot call, which encodes the piece (the task is paused)';
  const upload = 'asynchronous part: the uploadSnapshot call, which stores the piece and builds the acknowledgement';
  return [
    uploadRatioRow(b, fulls, deltas, setup),
    timing(
      'full.sync_ms',
      fulls.map((c) => c.syncMs),
      `${sync}, of a full piece`,
    ),
    timing(
      'full.async_ms',
      fulls.map((c) => c.asyncMs),
      `${upload}, of a full piece`,
    ),
    timing(
      'incremental.sync_ms',
      deltas.map((c) => c.syncMs),
      `${sync}, of a delta piece`,
    ),
    timing(
      'incremental.async_ms',
      deltas.map((c) => c.asyncMs),
      `${upload}, of a delta piece`,
    ),
    ...restoreRows(b, r, setup),
  ];
}

function uploadRatioRow(
  b: BackendRun,
  fulls: readonly StateRunResult['checkpoints'][number][],
  deltas: readonly StateRunResult['checkpoints'][number][],
  setup: string,
): Row {
  const fullBytes = median(fulls.map((c) => c.persistedBytes));
  const deltaBytes = deltas.map((c) => c.persistedBytes);
  const value = significant(median(deltaBytes) / fullBytes);
  return {
    id: `${b.prefix}.incremental.upload_ratio`,
    value,
    unit: 'ratio',
    target: UPLOAD_RATIO_TARGET,
    ratio: value,
    met: value <= UPLOAD_RATIO_TARGET,
    conditions:
      `persisted_bytes of a delta checkpoint (median of ${deltaBytes.length}: ${deltaBytes.join('/')} bytes) ÷ ` +
      `persisted_bytes of a full one (${fullBytes} bytes); target: at most ${UPLOAD_RATIO_TARGET * 100} % of a full ` +
      `upload; ${setup}`,
  };
}

function restoreRows(b: BackendRun, r: StateRunResult, setup: string): Row[] {
  const floor = significant(median(r.floorMs));
  const restore = significant(median(r.restoreMs));
  const target = significant(RESTORE_OVER_FLOOR_TARGET * floor);
  const ms = (xs: readonly number[]): string => xs.map((x) => x.toFixed(1)).join('/');
  const chain =
    `the newest checkpoint's chain: ${r.chainPieces} pieces (a full and ${r.chainPieces - 1} deltas), ` +
    `${r.chainBytes} bytes; ${r.restoreMs.length} timed rounds after one untimed, each a plain read then a restore, ` +
    `both from the page cache (it cannot be dropped without root)`;
  const plain =
    b.backend === 'dir'
      ? 'fs.readFile of each piece file and a sha256 of its bytes'
      : '@nats-io/obj getBlob of each piece object and a sha256 of its bytes';
  return [
    {
      id: `${b.prefix}.restore.floor_ms`,
      value: floor,
      unit: 'ms',
      target: null,
      ratio: null,
      met: null,
      conditions: `floor of a restore: ${plain}, all pieces at once, checked against the handle; median of ${r.floorMs.length} (${ms(r.floorMs)} ms); ${chain}; ${setup}`,
    },
    {
      id: `${b.prefix}.restore.ms`,
      value: restore,
      unit: 'ms',
      target,
      ratio: significant(restore / floor, 3),
      met: restore <= target,
      conditions:
        `restore: restoredState (fetch and verify every piece, 4 at a time) then IncrementalState.restore (decode ` +
        `the entries of the pieces into a new KeyedState; the values, long strings, stay in their piece until read, ` +
        `and are read, untimed, by the check that follows); every restored state equals the checkpointed one (` +
        `${r.digest.count} entries, sha256 of the sorted entries ${r.digest.sha256.slice(0, 16)}…); median of ` +
        `${r.restoreMs.length} (${ms(r.restoreMs)} ms; per round ÷ its plain read: ${roundRatios(r)}); target: at most ${RESTORE_OVER_FLOOR_TARGET} × ` +
        `${b.prefix}.restore.floor_ms of the same run; ${chain}; ${setup}`,
    },
    {
      id: `${b.prefix}.restore.read_all_ms`,
      value: significant(median(r.readAllMs)),
      unit: 'ms',
      target: null,
      ratio: null,
      met: null,
      conditions:
        `after each timed restore, the first read of every value (an iteration of the restored state, which ` +
        `decodes the values the restore left in their piece), not part of ${b.prefix}.restore.ms; median of ` +
        `${r.readAllMs.length} (${ms(r.readAllMs)} ms); ${chain}; ${setup}`,
    },
  ];
}

/** Each round's restore ÷ the plain read just before it, for the conditions. */
function roundRatios(r: StateRunResult): string {
  return r.restoreMs.map((ms, i) => (ms / (r.floorMs[i] ?? NaN)).toFixed(2)).join('/');
}

if (isMain(import.meta.url)) await runStandalone('state', state);
