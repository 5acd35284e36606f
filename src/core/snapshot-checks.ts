/**
 * Checks of the task snapshots in an acknowledgement, before anything is
 * recorded: the state handle (a URI of an accepted scheme, a SHA-256
 * checksum, a size within bounds, a known compression and a raw size
 * within bounds), shared pieces, source positions and
 * metrics. A snapshot that passes can be committed into a manifest and
 * restored from; one that does not is refused with MALFORMED or OVERSIZED
 * naming the field.
 */
import type { StateHandle } from '../gen/ckpt/v1/StateHandle.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import { CkptError, type ErrorIds } from './errors.js';
import { checkCount } from './limits.js';
import { isUncompressed, resolveStateCompression } from './state-compression.js';
import { checkId, echo, MAX_URI_BYTES } from './validate.js';

/** Longest source position input name, in bytes. */
export const MAX_INPUT_NAME_BYTES = 512;
/** Most source positions and shared pieces in one task snapshot. */
export const MAX_POSITIONS_PER_TASK = 1_024;
export const MAX_SHARED_PER_TASK = 10_000;
/** The URI schemes of the SDK's state backends: a local directory and the JetStream object store. */
export const DEFAULT_STATE_URI_SCHEMES: readonly string[] = Object.freeze(['file', 'nats-obj']);

/** The one checksum format a handle may carry. */
const CHECKSUM_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** Printable ASCII without spaces: the characters of a URI. */
const URI_PATTERN = /^([a-z][a-z0-9+.-]*):[\x21-\x7e]+$/;
/** What an encoded snapshot costs besides its strings, roughly: tags, lengths, numbers. */
const SNAPSHOT_OVERHEAD_BYTES = 96;
const ENTRY_OVERHEAD_BYTES = 24;

/** What an acknowledged snapshot is checked against. */
export interface SnapshotRules {
  /** Largest size a handle or the metrics may report. */
  maxStateBytes: number;
  /** URI schemes the job's workers store state under, e.g. `file`, `nats-obj`. */
  stateUriSchemes: ReadonlySet<string>;
}

/**
 * Checks one task snapshot of an acknowledgement; returns its approximate
 * encoded size in bytes, which the coordinator counts against the bytes a
 * job may hold pending. Throws MALFORMED or OVERSIZED naming the field.
 */
export function validateTaskSnapshot(snapshot: TaskSnapshot, ids: ErrorIds, rules: SnapshotRules): number {
  checkId(snapshot.taskId, 'snapshots.task_id', ids);
  let bytes = SNAPSHOT_OVERHEAD_BYTES + (snapshot.taskId?.length ?? 0);
  bytes += checkMetricsAndState(snapshot, ids, rules);
  const positions = snapshot.positions ?? [];
  if (positions.length > MAX_POSITIONS_PER_TASK) {
    throw new CkptError('OVERSIZED', `positions has more than ${MAX_POSITIONS_PER_TASK} entries`, ids);
  }
  for (const p of positions) {
    const input = p.input ?? '';
    if (input === '') throw new CkptError('MALFORMED', 'positions.input is required', ids);
    if (input.length > MAX_INPUT_NAME_BYTES || Buffer.byteLength(input) > MAX_INPUT_NAME_BYTES) {
      throw new CkptError('OVERSIZED', `positions.input is longer than ${MAX_INPUT_NAME_BYTES} bytes`, ids);
    }
    checkCount(p.offset ?? 0, 'positions.offset', Number.MAX_SAFE_INTEGER, ids);
    bytes += ENTRY_OVERHEAD_BYTES + input.length * 3;
  }
  return bytes;
}

/** The metrics' figures, and the handle when the task has state; returns the handle's approximate bytes. */
function checkMetricsAndState(snapshot: TaskSnapshot, ids: ErrorIds, rules: SnapshotRules): number {
  const m = snapshot.metrics ?? {};
  // No closure per snapshot: an acknowledgement checks thousands.
  checkFigure(m.alignmentMs, 'alignment_ms', Number.MAX_SAFE_INTEGER, ids);
  checkFigure(m.syncMs, 'sync_ms', Number.MAX_SAFE_INTEGER, ids);
  checkFigure(m.asyncMs, 'async_ms', Number.MAX_SAFE_INTEGER, ids);
  checkFigure(m.processedRecords, 'processed_records', Number.MAX_SAFE_INTEGER, ids);
  const stateSize = checkFigure(m.stateSizeBytes, 'state_size_bytes', rules.maxStateBytes, ids);
  checkFigure(m.persistedBytes, 'persisted_bytes', rules.maxStateBytes, ids);
  checkFigure(m.inFlightBytes, 'in_flight_bytes', rules.maxStateBytes, ids);
  const state = snapshot.state ?? undefined;
  if (state === undefined || (state.uri ?? '') === '') {
    checkNoState(state, stateSize, ids);
    return 0;
  }
  let bytes = checkHandle(state, 'state', ids, rules);
  const shared = state.shared ?? [];
  if (shared.length > MAX_SHARED_PER_TASK) {
    throw new CkptError('OVERSIZED', `state.shared has more than ${MAX_SHARED_PER_TASK} entries`, ids);
  }
  for (const piece of shared) {
    if ((piece.shared ?? []).length > 0) throw new CkptError('MALFORMED', 'state.shared entries cannot nest', ids);
    if ((piece.uri ?? '') === '') throw new CkptError('MALFORMED', 'state.shared.uri is required', ids);
    bytes += checkHandle(piece, 'state.shared', ids, rules);
  }
  return bytes;
}

/** Whether `value` passes `checkCount` with `max` as it is. */
function inBounds(value: unknown, max: number): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

/** One figure of the metrics: a whole number from 0 to `max` (absent counts as 0). */
function checkFigure(value: unknown, field: string, max: number, ids: ErrorIds): number {
  if (inBounds(value, max)) return value as number;
  return checkCount(value ?? 0, `metrics.${field}`, max, ids);
}

/** A snapshot without a handle: nothing may claim state. */
function checkNoState(state: StateHandle | undefined, stateSize: number, ids: ErrorIds): void {
  const compression = resolveStateCompression(state?.compression, 'state.compression', ids);
  const claims =
    Number(state?.sizeBytes ?? 0) !== 0 ||
    (state?.checksum ?? '') !== '' ||
    (state?.shared ?? []).length > 0 ||
    !isUncompressed(compression) ||
    Number(state?.rawSizeBytes ?? 0) !== 0;
  if (claims) {
    throw new CkptError(
      'MALFORMED',
      'state has a size, checksum, shared pieces, compression or raw size but no uri',
      ids,
    );
  }
  if (stateSize !== 0) {
    throw new CkptError(
      'MALFORMED',
      `metrics.state_size_bytes is ${stateSize} but the snapshot has no state handle: a task with state must send it`,
      ids,
    );
  }
}

/** One handle's uri, checksum and size; returns its approximate bytes. */
function checkHandle(handle: StateHandle, field: string, ids: ErrorIds, rules: SnapshotRules): number {
  const uri = handle.uri ?? '';
  if (uri.length > MAX_URI_BYTES)
    throw new CkptError('OVERSIZED', `${field}.uri is longer than ${MAX_URI_BYTES} bytes`, ids);
  const scheme = URI_PATTERN.exec(uri)?.[1];
  if (scheme === undefined) {
    throw new CkptError('MALFORMED', `${field}.uri ${echo(uri)} is not a URI of printable ASCII`, ids);
  }
  if (!rules.stateUriSchemes.has(scheme)) {
    const accepted = [...rules.stateUriSchemes].join(', ');
    throw new CkptError('MALFORMED', `${field}.uri scheme ${echo(scheme)} is not one of ${accepted}`, ids);
  }
  const checksum = handle.checksum ?? '';
  if (!CHECKSUM_PATTERN.test(checksum)) {
    throw new CkptError(
      'MALFORMED',
      `${field}.checksum ${echo(checksum)} must be sha256: and 64 lowercase hex digits`,
      ids,
    );
  }
  const sizeBytes = inBounds(handle.sizeBytes, rules.maxStateBytes)
    ? (handle.sizeBytes as number)
    : checkCount(handle.sizeBytes ?? 0, `${field}.size_bytes`, rules.maxStateBytes, ids);
  checkCompression(handle, field, sizeBytes, ids, rules);
  return ENTRY_OVERHEAD_BYTES + uri.length + checksum.length;
}

/**
 * A known compression and a raw size within `maxStateBytes`: the bound a
 * reader inflates to. Stored as they are, the bytes are either of a handle
 * written before compression (raw size 0) or exactly `sizeBytes` long.
 */
function checkCompression(
  handle: StateHandle,
  field: string,
  sizeBytes: number,
  ids: ErrorIds,
  rules: SnapshotRules,
): void {
  // The field names are spelled out only for an error: a call of thousands of snapshots checks as many handles.
  const compression =
    handle.compression === 'STATE_COMPRESSION_UNSPECIFIED'
      ? handle.compression
      : resolveStateCompression(handle.compression, `${field}.compression`, ids);
  const rawSizeBytes = inBounds(handle.rawSizeBytes, rules.maxStateBytes)
    ? (handle.rawSizeBytes as number)
    : checkCount(handle.rawSizeBytes ?? 0, `${field}.raw_size_bytes`, rules.maxStateBytes, ids);
  if (isUncompressed(compression) && rawSizeBytes !== 0 && rawSizeBytes !== sizeBytes) {
    throw new CkptError(
      'MALFORMED',
      `${field}.raw_size_bytes ${rawSizeBytes} must be 0 or size_bytes ${sizeBytes} for uncompressed state`,
      ids,
    );
  }
}
