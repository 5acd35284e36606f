/**
 * Replies encoded ahead, from parts encoded once. A job of 100,000 tasks
 * has a spec of about 1 MB, which every worker's welcome and every answer
 * about the job carry: encoded again for each of 16 workers it took
 * 160-460 ms of the event loop each time. Here the spec is encoded once
 * per spec object (`store/spec-encoding.ts`) and the other fields around it; a restore command joins the encodings
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
import type { JobInfo } from '../gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { RestoreCommand } from '../gen/ckpt/v1/RestoreCommand.js';
import type { SubmitJobResponse } from '../gen/ckpt/v1/SubmitJobResponse.js';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Welcome } from '../gen/ckpt/v1/Welcome.js';
import { codec, type Codec } from '../proto/index.js';
import { taskBytes, varintBytes, writeField } from '../store/manifest-encoding.js';
import { fieldBytes, specBytes } from '../store/spec-encoding.js';

/** `AttachResponse.welcome` (field 1) and `AttachResponse.restore` (field 3), length-delimited. */
const WELCOME_TAG = (1 << 3) | 2;
const RESTORE_TAG = (3 << 3) | 2;
/** `Welcome.spec` (field 7) and `RestoreCommand.snapshots` (field 4), length-delimited. */
const SPEC_TAG = (7 << 3) | 2;
const SNAPSHOTS_TAG = (4 << 3) | 2;

/** `SubmitJobResponse.job`, `GetJobResponse.job`, `CancelJobResponse.job` and `JobInfo.spec`: field 1 each. */
const JOB_TAG = (1 << 3) | 2;
const JOB_SPEC_TAG = (1 << 3) | 2;

let codecs: {
  welcome: Codec<Welcome, unknown>;
  restore: Codec<RestoreCommand, unknown>;
  jobInfo: Codec<JobInfo, unknown>;
  submitted: Codec<SubmitJobResponse, unknown>;
};

function replyCodecs(): typeof codecs {
  codecs ??= {
    welcome: codec<Welcome, unknown>('Welcome'),
    restore: codec<RestoreCommand, unknown>('RestoreCommand'),
    jobInfo: codec<JobInfo, unknown>('JobInfo'),
    submitted: codec<SubmitJobResponse, unknown>('SubmitJobResponse'),
  };
  return codecs;
}

/**
 * Loads the codecs and lets protobuf.js generate their converters now
 * (it does so at a type's first use, which otherwise falls in the middle
 * of the first hellos of a large job).
 */
export function warmReplyCodecs(): void {
  const c = replyCodecs();
  c.welcome.encode({ sessionId: 'warm-up', epoch: 1 });
  c.restore.encode({ jobId: 'warm-up', epoch: 1, checkpointId: 1, term: 1 });
  c.jobInfo.encode({ state: 'JOB_STATE_RUNNING', epoch: 1, restorePoint: { checkpointId: 1, epoch: 1 } });
  c.submitted.encode({ created: true });
}

/** The encodings of replies made here, by reply object. */
const encodedReplies = new WeakMap<object, Buffer>();

/**
 * The encoding made ahead for `reply`, if it was built here; or, for an
 * answer about one job (`{ job }` of GetJob and CancelJob, `{ job, created }`
 * of SubmitJob), its encoding made now around its spec's encoding, which
 * is made once per spec (`specBytes`).
 */
export function encodedReply(reply: unknown): Buffer | undefined {
  if (typeof reply !== 'object' || reply === null) return undefined;
  return encodedReplies.get(reply) ?? jobReplyBytes(reply);
}

/** A JobInfo: its spec is the field a large job makes large. */
function isJobInfo(value: unknown): value is JobInfo & { spec: JobSpec } {
  return typeof value === 'object' && value !== null && typeof (value as JobInfo).spec === 'object';
}

function jobReplyBytes(reply: object): Buffer | undefined {
  const { job, created, ...others } = reply as { job?: unknown; created?: unknown };
  if (!isJobInfo(job) || Object.keys(others).length > 0) return undefined;
  if (created !== undefined && typeof created !== 'boolean') return undefined;
  const { spec, ...rest } = job;
  const c = replyCodecs();
  const specEncoding = specBytes(spec);
  const head = c.jobInfo.encode(rest);
  const tail = created === undefined ? undefined : c.submitted.encode({ created });
  const inner = head.length + fieldBytes(specEncoding);
  const out = Buffer.allocUnsafe(1 + varintBytes(inner) + inner + (tail?.length ?? 0));
  let offset = writeHeader(out, 0, JOB_TAG, inner);
  offset = writeField(out, offset, JOB_SPEC_TAG, specEncoding);
  out.set(head, offset);
  if (tail !== undefined) out.set(tail, offset + head.length);
  return out;
}

/**
 * A welcome reply whose encoding is made now from the spec's encoding
 * (made once per spec) and the other fields'. Throws like the service's
 * serializer on fields that are not valid.
 */
export function welcomeReply(welcome: Welcome): AttachResponse {
  const { spec, ...rest } = welcome;
  const head = replyCodecs().welcome.encode(rest);
  const specEncoding = spec === null || spec === undefined ? undefined : specBytes(spec);
  const inner = head.length + (specEncoding === undefined ? 0 : fieldBytes(specEncoding));
  const out = Buffer.allocUnsafe(1 + varintBytes(inner) + inner);
  let offset = writeHeader(out, 0, WELCOME_TAG, inner);
  out.set(head, offset);
  offset += head.length;
  if (specEncoding !== undefined) writeField(out, offset, SPEC_TAG, specEncoding);
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
