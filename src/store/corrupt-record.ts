/**
 * Records read back from etcd are untrusted: one that does not decode or
 * fails a check is reported as a `CorruptRecordError` naming its key and
 * what is wrong, never used.
 */
import { CkptError, type ErrorIds } from '../core/errors.js';

/** Longest description of a problem kept in an error; longer ones are cut. */
export const MAX_PROBLEM_CHARS = 1_024;
/** Characters of a stored value quoted in a problem. */
export const PREVIEW_CHARS = 40;

/**
 * The reasons of a corrupt record: JOB_QUARANTINED for the records of a
 * job itself (its spec, counters, restore point and latest checkpoint),
 * which make the whole job unusable; INTERNAL for one checkpoint's root,
 * parts or summary.
 */
export type CorruptRecordReason = 'JOB_QUARANTINED' | 'INTERNAL';

/** Options of a `CorruptRecordError`. */
export interface CorruptRecordOptions extends ErrorIds {
  /** The error that revealed the problem, e.g. a decoding error. */
  cause?: unknown;
}

/**
 * A record in etcd that is unreadable or invalid. Its message reads
 * `<subject> is corrupt: <problem> (key <key>)`; `key` and `problem` are
 * also kept apart, so that a job's quarantine reason can be built from
 * them. Never retryable: the record stays as it is until someone repairs it.
 */
export class CorruptRecordError extends CkptError {
  /** The full etcd key of the record. */
  readonly key: string;
  /** What is wrong with it, at most `MAX_PROBLEM_CHARS` characters. */
  readonly problem: string;

  constructor(
    reason: CorruptRecordReason,
    subject: string,
    key: string,
    problem: string,
    options: CorruptRecordOptions = {},
  ) {
    const bounded = bound(problem);
    super(reason, `${subject} is corrupt: ${bounded} (key ${key})`, { ...options, retryable: false });
    this.key = key;
    this.problem = bounded;
  }

  /** `<key>: <problem>`, what `QuarantinedJob.reason` holds. */
  get summary(): string {
    return `${this.key}: ${this.problem}`;
  }
}

/** The error of one of a job's own records: reason JOB_QUARANTINED. */
export function corruptJobRecord(jobId: string, key: string, problem: string, cause?: unknown): CorruptRecordError {
  return new CorruptRecordError('JOB_QUARANTINED', `job ${jobId}`, key, problem, {
    jobId,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The start of a stored value for a problem's text: printable ASCII, other
 * bytes as `\xNN`, at most `PREVIEW_CHARS` bytes of it, quoted.
 */
export function preview(value: Uint8Array | string): string {
  const bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value);
  let text = '';
  for (const byte of bytes.subarray(0, PREVIEW_CHARS)) {
    text +=
      byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c
        ? String.fromCharCode(byte)
        : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return `"${text}"${bytes.length > PREVIEW_CHARS ? `... (${bytes.length} bytes)` : ''}`;
}

/** Printable ASCII only (others as `\uNNNN`), cut to `MAX_PROBLEM_CHARS`. */
function bound(problem: string): string {
  const printable = problem.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return printable.length <= MAX_PROBLEM_CHARS ? printable : `${printable.slice(0, MAX_PROBLEM_CHARS - 3)}...`;
}
