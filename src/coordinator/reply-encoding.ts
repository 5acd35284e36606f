/**
 * Session replies encoded ahead, from parts encoded once. A job of 100,000
 * tasks has a spec of about 1 MB, which every worker's welcome carries:
 * encoded again for each of 16 workers it took 160-460 ms of the event
 * loop each time. Here the spec is encoded once per spec object and the
 * welcome's other fields around it; a restore command joins the encodings
 * its snapshots got when their acknowledgements arrived (the manifest
 * commits the very same objects) instead of encoding them again.
 *
 * The reply stays the plain message object the coordinator always sent
 * (tests and logs read it as before); its bytes wait beside it, and the
 * gRPC service's response serializer takes them (`reply-stream.ts`,
 * `withEncodedReplies`). Fields are written as protobuf lays them out: a
 * message field is a tag, a varint length and the message's encoding, a
 * repeated message field is such an entry per element, and the fields of
 * a message may come in any order.
 */
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { RestoreCommand } from '../gen/ckpt/v1/RestoreCommand.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Welcome } from '../gen/ckpt/v1/Welcome.js';
import { codec, type Codec } from '../proto/index.js';
import { taskBytes, varintBytes, writeField } from '../store/manifest-encoding.js';

/** `AttachResponse.welcome` (field 1) and `AttachResponse.restore` (field 3), length-delimited. */
const WELCOME_TAG = (1 << 3) | 2;
const RESTORE_TAG = (3 << 3) | 2;
/** `Welcome.spec` (field 7) and `RestoreCommand.snapshots` (field 4), length-delimited. */
const SPEC_TAG = (7 << 3) | 2;
const SNAPSHOTS_TAG = (4 << 3) | 2;

let codecs: {
  welcome: Codec<Welcome, unknown>;
  spec: Codec<JobSpec, unknown>;
  restore: Codec<RestoreCommand, unknown>;
};

function replyCodecs(): typeof codecs {
  codecs ??= {
    welcome: codec<Welcome, unknown>('Welcome'),
    spec: codec<JobSpec, unknown>('JobSpec'),
    restore: codec<RestoreCommand, unknown>('RestoreCommand'),
  };
  return codecs;
}

/** The encodings of replies made here, by reply object. */
const encodedReplies = new WeakMap<object, Buffer>();
/** Each spec's encoding, by spec object (a job's spec object lives as long as its job). */
const specEncodings = new WeakMap<object, Uint8Array>();

/** The encoding made ahead for `reply`, if it was built here. */
export function encodedReply(reply: unknown): Buffer | undefined {
  return typeof reply === 'object' && reply !== null ? encodedReplies.get(reply) : undefined;
}

function fieldBytes(bytes: Uint8Array): number {
  return 1 + varintBytes(bytes.length) + bytes.length;
}

/**
 * A welcome reply whose encoding is made now from the spec's encoding
 * (made once per spec) and the other fields'. Throws like the service's
 * serializer on fields that are not valid.
 */
export function welcomeReply(welcome: Welcome): AttachResponse {
  const { spec, ...rest } = welcome;
  const c = replyCodecs();
  const head = c.welcome.encode(rest);
  let specBytes: Uint8Array | undefined;
  if (spec !== null && spec !== undefined) {
    specBytes = specEncodings.get(spec);
    if (specBytes === undefined) {
      specBytes = c.spec.encode(spec);
      specEncodings.set(spec, specBytes);
    }
  }
  const inner = head.length + (specBytes === undefined ? 0 : fieldBytes(specBytes));
  const out = Buffer.allocUnsafe(1 + varintBytes(inner) + inner);
  let offset = writeHeader(out, 0, WELCOME_TAG, inner);
  out.set(head, offset);
  offset += head.length;
  if (specBytes !== undefined) writeField(out, offset, SPEC_TAG, specBytes);
  const reply: AttachResponse = { welcome };
  encodedReplies.set(reply, out);
  return reply;
}

/**
 * A restore reply whose encoding joins each snapshot's encoding (made when
 * it was acknowledged, or now) after the command's other fields.
 */
export function restoreReply(restore: RestoreCommand): AttachResponse {
  const { snapshots, ...rest } = restore;
  const head = replyCodecs().restore.encode(rest);
  const entries = (snapshots ?? []).map((s: TaskSnapshot) => taskBytes(s));
  let inner = head.length;
  for (const bytes of entries) inner += fieldBytes(bytes);
  const out = Buffer.allocUnsafe(1 + varintBytes(inner) + inner);
  let offset = writeHeader(out, 0, RESTORE_TAG, inner);
  out.set(head, offset);
  offset += head.length;
  for (const bytes of entries) offset = writeField(out, offset, SNAPSHOTS_TAG, bytes);
  const reply: AttachResponse = { restore };
  encodedReplies.set(reply, out);
  return reply;
}

/** Writes a tag and a varint length; returns the offset after them. */
function writeHeader(out: Uint8Array, offset: number, tag: number, length: number): number {
  let at = offset;
  out[at++] = tag;
  let n = length;
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}
