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

function taskBytes(task: TaskSnapshot): Uint8Array {
  let bytes = taskEncodings.get(task);
  if (bytes === undefined) {
    bytes = manifestCodecs().task.encode(task);
    taskEncodings.set(task, bytes);
  }
  return bytes;
}

/**
 * Encodes acknowledged snapshots ahead of their commit, so that the commit
 * only joins them. Throws as `encodeManifest` would for a snapshot that is
 * no valid message (which the coordinator's checks have refused already).
 */
export function prepareTaskSnapshots(snapshots: readonly TaskSnapshot[]): void {
  for (const snapshot of snapshots) taskBytes(snapshot);
}

function varintBytes(n: number): number {
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
  for (const bytes of entries) {
    out[offset++] = TASKS_TAG;
    let n = bytes.length;
    while (n >= 0x80) {
      out[offset++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    out[offset++] = n;
    out.set(bytes, offset);
    offset += bytes.length;
  }
  if (after !== undefined) out.set(after, offset);
  return out;
}
