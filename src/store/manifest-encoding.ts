/**
 * A manifest's encoding, built from one encoding per task snapshot. A job
 * of 100,000 tasks commits a manifest of 100,000 snapshots, which arrive in
 * acknowledgements spread over the checkpoint; `prepareTaskSnapshots`
 * encodes them as they arrive, and the commit then joins the encodings
 * instead of converting, checking and encoding every snapshot at once.
 * The bytes are the same as the whole manifest's encoding: protobuf writes
 * a repeated message field as its entries one after the other, each a tag,
 * a length and the entry's own encoding, in field order.
 */
import type { Manifest } from '../gen/ckpt/v1/Manifest.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import { codec, type Codec } from '../proto/index.js';

/** `Manifest.tasks` (field 7, length-delimited) as its tag byte. */
const TASKS_TAG = (7 << 3) | 2;

let codecs: { manifest: Codec<Manifest, unknown>; task: Codec<TaskSnapshot, unknown> } | undefined;

function manifestCodecs(): NonNullable<typeof codecs> {
  codecs ??= { manifest: codec<Manifest, unknown>('Manifest'), task: codec<TaskSnapshot, unknown>('TaskSnapshot') };
  return codecs;
}

/**
 * Encodings of task snapshots, by snapshot. Acknowledged snapshots are not
 * changed once received (a manifest takes the very objects the
 * acknowledgements carried), so an encoding made when one arrived is the
 * encoding at its commit. A snapshot no manifest holds any more is
 * collected with its encoding.
 */
const taskEncodings = new WeakMap<object, Uint8Array>();

/**
 * The encoding of one task snapshot, made once per snapshot object: the
 * one its acknowledgement prepared, or made now. A restore command takes
 * the very snapshots the manifest committed, and their encodings with them.
 */
export function taskBytes(task: TaskSnapshot): Uint8Array {
  let bytes = taskEncodings.get(task);
  if (bytes === undefined) {
    bytes = manifestCodecs().task.encode(task);
    taskEncodings.set(task, bytes);
  }
  return bytes;
}

/**
 * Keeps `bytes` as the encoding of `task`, which was decoded from them
 * (an acknowledgement's wire bytes of the snapshot): the commit then joins
 * them as they came instead of encoding the snapshot again. Fields the
 * coordinator does not know travel on with them. A snapshot that has an
 * encoding already keeps it.
 */
export function adoptTaskBytes(task: object, bytes: Uint8Array): void {
  if (!taskEncodings.has(task)) taskEncodings.set(task, bytes);
}

/**
 * Encodes acknowledged snapshots ahead of their commit, so that the commit
 * only joins them. Throws as `encodeManifest` would for a snapshot that is
 * no valid message (which the coordinator's checks have refused already).
 */
export function prepareTaskSnapshots(snapshots: readonly TaskSnapshot[]): void {
  for (const snapshot of snapshots) taskBytes(snapshot);
}

/** How many bytes the varint of `n` takes. */
export function varintBytes(n: number): number {
  let bytes = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) bytes += 1;
  return bytes;
}

/**
 * The encoding of `manifest`, equal to the codec's: the fields before
 * `tasks`, every task's encoding (prepared or made now), then the fields
 * after. Throws like the codec on a message that is not valid.
 */
export function encodeManifest(manifest: Manifest): Uint8Array {
  const { manifest: manifestCodec } = manifestCodecs();
  const { tasks, fromSavepoint, ...head } = manifest;
  const before = manifestCodec.encode(head);
  const after =
    fromSavepoint === null || fromSavepoint === undefined ? undefined : manifestCodec.encode({ fromSavepoint });
  const entries = (tasks ?? []).map(taskBytes);
  let total = before.length + (after?.length ?? 0);
  for (const bytes of entries) total += 1 + varintBytes(bytes.length) + bytes.length;
  const out = Buffer.allocUnsafe(total);
  out.set(before, 0);
  let offset = before.length;
  for (const bytes of entries) offset = writeField(out, offset, TASKS_TAG, bytes);
  if (after !== undefined) out.set(after, offset);
  return out;
}

/**
 * Writes a length-delimited field (`tag`, the length of `bytes` as a
 * varint, `bytes`) into `out` at `offset`; returns the offset after it.
 * `tag` must be below 0x80 (a field number below 16).
 */
export function writeField(out: Uint8Array, offset: number, tag: number, bytes: Uint8Array): number {
  let at = offset;
  out[at++] = tag;
  let n = bytes.length;
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  out.set(bytes, at);
  return at + bytes.length;
}
