/**
 * A job spec's encoding, made once per spec object. A job of 100,000 tasks
 * has a spec of about 1 MB, which its stored record, every worker's
 * welcome and every answer about the job (GetJob, SubmitJob) carry:
 * converted and encoded for each it took seconds of the event loop in
 * all. A spec object is not changed once a job holds it (the coordinator's
 * spec checks assume as much), so its encoding is its encoding for good,
 * and a spec no job holds any more is collected with it.
 */
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import type { JobState } from '../gen/ckpt/v1/JobState.js';
import type { StoredJob } from '../gen/ckpt/v1/StoredJob.js';
import { codec, type Codec } from '../proto/index.js';
import { varintBytes, writeField } from './manifest-encoding.js';

/** `StoredJob.spec` (field 1, length-delimited) as its tag byte. */
const STORED_SPEC_TAG = (1 << 3) | 2;

let codecs: { spec: Codec<JobSpec, unknown>; storedJob: Codec<StoredJob, unknown> } | undefined;

function specCodecs(): NonNullable<typeof codecs> {
  codecs ??= { spec: codec<JobSpec, unknown>('JobSpec'), storedJob: codec<StoredJob, unknown>('StoredJob') };
  return codecs;
}

const specEncodings = new WeakMap<object, Uint8Array>();

/**
 * The encoding of `spec`, made at its first use, equal to the codec's.
 * Throws like the codec on a spec that is no valid message.
 */
export function specBytes(spec: JobSpec): Uint8Array {
  let bytes = specEncodings.get(spec);
  if (bytes === undefined) {
    bytes = plainTasks(spec.tasks) ? joinSpec(spec, spec.tasks ?? []) : specCodecs().spec.encode(spec);
    specEncodings.set(spec, bytes);
  }
  return bytes;
}

type TaskOf = NonNullable<JobSpec['tasks']>[number];
/** A task of plain strings, which `taskLength` and `writeTask` encode as the codec would. */
type PlainTask = { taskId: string; inputs?: string[]; labels?: Record<string, string> };

/**
 * Whether every task holds only strings where the codec wants them: then
 * the tasks are written here, field by field (the codec converts and
 * checks each task object on its way, a second per 100,000 tasks), and
 * anything else goes to the codec whole.
 */
function plainTasks(tasks: readonly TaskOf[] | null | undefined): tasks is PlainTask[] {
  for (const task of tasks ?? []) {
    if (typeof task !== 'object' || task === null || typeof task.taskId !== 'string') return false;
    for (const key in task) if (key !== 'taskId' && key !== 'inputs' && key !== 'labels') return false;
    const { inputs, labels } = task;
    if (inputs !== null && inputs !== undefined) {
      if (!Array.isArray(inputs)) return false;
      for (const input of inputs) if (typeof input !== 'string') return false;
    }
    if (labels !== null && labels !== undefined) {
      if (typeof labels !== 'object' || Object.getPrototypeOf(labels) !== Object.prototype) return false;
      for (const key in labels) if (typeof labels[key] !== 'string') return false;
    }
  }
  return true;
}

/** `TaskSpec.task_id`, `.inputs`, `.labels`; `JobSpec.tasks`; a map entry's key and value. */
const TASK_ID_TAG = (1 << 3) | 2;
const INPUTS_TAG = (2 << 3) | 2;
const TASK_LABELS_TAG = (3 << 3) | 2;
const TASKS_TAG = (2 << 3) | 2;
const ENTRY_KEY_TAG = (1 << 3) | 2;
const ENTRY_VALUE_TAG = (2 << 3) | 2;

/** The codec's fields 1, 3 and 4 (job id, policy, labels) around the tasks written here (field 2). */
function joinSpec(spec: JobSpec, tasks: readonly PlainTask[]): Uint8Array {
  const c = specCodecs().spec;
  const head = c.encode({ jobId: spec.jobId });
  const tail = c.encode({ policy: spec.policy, labels: spec.labels });
  const lengths = tasks.map(taskLength);
  let total = head.length + tail.length;
  for (const length of lengths) total += 1 + varintBytes(length) + length;
  const out = Buffer.allocUnsafe(total);
  out.set(head, 0);
  let at = head.length;
  tasks.forEach((task, i) => {
    at = writeVarintField(out, at, TASKS_TAG, lengths[i]!);
    at = writeTask(out, at, task);
  });
  out.set(tail, at);
  return out;
}

/** UTF-8 bytes of `text`; ids are ASCII, counted here faster than by a call into the runtime. */
function utf8Bytes(text: string): number {
  for (let i = 0; i < text.length; i += 1) if (text.charCodeAt(i) >= 0x80) return Buffer.byteLength(text);
  return text.length;
}

function stringField(text: string): number {
  const bytes = utf8Bytes(text);
  return 1 + varintBytes(bytes) + bytes;
}

function entryLength(key: string, value: string): number {
  return stringField(key) + stringField(value);
}

function taskLength(task: PlainTask): number {
  let length = stringField(task.taskId);
  for (const input of task.inputs ?? []) length += stringField(input);
  const labels = task.labels ?? {};
  for (const key in labels) {
    const entry = entryLength(key, labels[key]!);
    length += 1 + varintBytes(entry) + entry;
  }
  return length;
}

function writeTask(out: Buffer, offset: number, task: PlainTask): number {
  let at = writeString(out, offset, TASK_ID_TAG, task.taskId);
  for (const input of task.inputs ?? []) at = writeString(out, at, INPUTS_TAG, input);
  const labels = task.labels ?? {};
  for (const key in labels) {
    const value = labels[key]!;
    at = writeVarintField(out, at, TASK_LABELS_TAG, entryLength(key, value));
    at = writeString(out, at, ENTRY_KEY_TAG, key);
    at = writeString(out, at, ENTRY_VALUE_TAG, value);
  }
  return at;
}

function writeString(out: Buffer, offset: number, tag: number, text: string): number {
  const bytes = utf8Bytes(text);
  let at = writeVarintField(out, offset, tag, bytes);
  if (bytes !== text.length) return at + out.write(text, at, 'utf8');
  for (let i = 0; i < text.length; i += 1) out[at++] = text.charCodeAt(i);
  return at;
}

/** Writes a one-byte tag and the varint `n`; returns the offset after them. */
function writeVarintField(out: Buffer, offset: number, tag: number, n: number): number {
  let at = offset;
  out[at++] = tag;
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** Bytes of a length-delimited field of `bytes` with a one-byte tag. */
export function fieldBytes(bytes: Uint8Array): number {
  return 1 + varintBytes(bytes.length) + bytes.length;
}

/**
 * The encoding of a StoredJob, equal to the codec's: the spec's encoding
 * (`specBytes`) as field 1, then the state and creation time.
 */
export function storedJobBytes(spec: JobSpec, state: JobState, createdAtMs: number): Uint8Array {
  const spec1 = specBytes(spec);
  const rest = specCodecs().storedJob.encode({ state, createdAtMs });
  const out = Buffer.allocUnsafe(fieldBytes(spec1) + rest.length);
  out.set(rest, writeField(out, 0, STORED_SPEC_TAG, spec1));
  return out;
}
