/**
 * The key layout of `proto/ckpt/v1/storage.proto`. Ids and epochs are
 * written as 20-digit zero-padded decimals, so that etcd's byte-wise
 * comparison and ordering of keys and values is numeric.
 */
import { CkptError } from '../core/errors.js';

/** Digits of a padded id or epoch: enough for every uint64. */
export const PADDED_DIGITS = 20;

const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
/** What `pad` writes: exactly `PADDED_DIGITS` decimal digits. */
export const PADDED_PATTERN = /^\d{20}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** `n` as 20 zero-padded decimal digits; `n` must be a non-negative safe integer. */
export function pad(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new CkptError('MALFORMED', `expected a non-negative integer id or epoch, got ${n}`);
  }
  return String(n).padStart(PADDED_DIGITS, '0');
}

/** Reads a value written by `pad`; undefined when it is not one. */
export function unpad(text: string): number | undefined {
  if (!PADDED_PATTERN.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Throws MALFORMED unless `jobId` can be a path segment of a key. */
export function assertJobId(jobId: string): void {
  if (typeof jobId !== 'string' || !JOB_ID_PATTERN.test(jobId)) {
    throw new CkptError('MALFORMED', `job id must be 1-128 characters of [A-Za-z0-9_-], got ${JSON.stringify(jobId)}`, {
      jobId,
    });
  }
}

/** The kinds of key of which a job has at most one. */
export type SingleKeyKind = 'spec' | 'epoch' | 'latest' | 'id-floor' | 'restore-point';

const SINGLE_KEY_KINDS: ReadonlySet<string> = new Set<SingleKeyKind>([
  'spec',
  'epoch',
  'latest',
  'id-floor',
  'restore-point',
]);

function isSingleKeyKind(kind: string): kind is SingleKeyKind {
  return SINGLE_KEY_KINDS.has(kind);
}

/** What a key under the jobs prefix names. */
export type ParsedKey =
  | { kind: SingleKeyKind; jobId: string }
  | { kind: 'root' | 'summary'; jobId: string; checkpointId: number }
  | { kind: 'part'; jobId: string; sha256: string };

/** Builds and parses the keys of one store prefix. */
export class KeyLayout {
  /** `prefix` ends with `/`, e.g. `/ckpt/`. */
  constructor(readonly prefix: string) {}

  /** `<p>jobs/`: everything the store keeps lives below it. */
  jobs(): string {
    return `${this.prefix}jobs/`;
  }

  /** `<p>jobs/<job>/`: everything about one job. */
  job(jobId: string): string {
    assertJobId(jobId);
    return `${this.jobs()}${jobId}/`;
  }

  /** The job's StoredJob. */
  spec(jobId: string): string {
    return `${this.job(jobId)}spec`;
  }

  /** The job's epoch, padded. */
  epoch(jobId: string): string {
    return `${this.job(jobId)}epoch`;
  }

  /** The job's latest committed checkpoint id, padded. */
  latest(jobId: string): string {
    return `${this.job(jobId)}latest`;
  }

  /** The job's id floor, padded. */
  idFloor(jobId: string): string {
    return `${this.job(jobId)}id-floor`;
  }

  /** The job's RestorePoint, written with the epoch by a restore. */
  restorePoint(jobId: string): string {
    return `${this.job(jobId)}restore-point`;
  }

  /** The job's StoredCheckpointStatistics. */
  stats(jobId: string): string {
    return `${this.job(jobId)}stats`;
  }

  /** Prefix of every committed checkpoint of the job. */
  checkpoints(jobId: string): string {
    return `${this.job(jobId)}checkpoints/`;
  }

  /** Prefix of one committed checkpoint: its root and summary. */
  checkpoint(jobId: string, checkpointId: number): string {
    return `${this.checkpoints(jobId)}${pad(checkpointId)}/`;
  }

  /** The checkpoint's ManifestRoot. */
  root(jobId: string, checkpointId: number): string {
    return `${this.checkpoint(jobId, checkpointId)}root`;
  }

  /** The checkpoint's CheckpointSummary. */
  summary(jobId: string, checkpointId: number): string {
    return `${this.checkpoint(jobId, checkpointId)}summary`;
  }

  /** Prefix of the job's manifest parts. */
  parts(jobId: string): string {
    return `${this.job(jobId)}parts/`;
  }

  /** One manifest part, named by the hex SHA-256 of its bytes. */
  part(jobId: string, sha256: string): string {
    return `${this.parts(jobId)}${sha256}`;
  }

  /** Prefix of the job's savepoints. */
  savepoints(jobId: string): string {
    return `${this.job(jobId)}savepoints/`;
  }

  /** One savepoint of the job, by its checkpoint id. */
  savepoint(jobId: string, checkpointId: number): string {
    return `${this.savepoints(jobId)}${pad(checkpointId)}`;
  }

  /** The job a key under `jobs/` belongs to, whatever the rest of it; undefined for other keys. */
  jobOf(key: string): string | undefined {
    const base = this.jobs();
    if (!key.startsWith(base)) return undefined;
    const rest = key.slice(base.length);
    const slash = rest.indexOf('/');
    const jobId = slash < 0 ? undefined : rest.slice(0, slash);
    return jobId !== undefined && JOB_ID_PATTERN.test(jobId) ? jobId : undefined;
  }

  /** What `key` names, or undefined for a key outside the layout. */
  parse(key: string): ParsedKey | undefined {
    const base = this.jobs();
    if (!key.startsWith(base)) return undefined;
    const segments = key.slice(base.length).split('/');
    const [jobId, kind, name, leaf] = segments;
    if (jobId === undefined || !JOB_ID_PATTERN.test(jobId) || kind === undefined) return undefined;
    if (segments.length === 2) {
      return isSingleKeyKind(kind) ? { kind, jobId } : undefined;
    }
    if (segments.length === 3 && kind === 'parts' && name !== undefined && SHA256_PATTERN.test(name)) {
      return { kind: 'part', jobId, sha256: name };
    }
    if (segments.length === 4 && kind === 'checkpoints' && (leaf === 'root' || leaf === 'summary')) {
      const checkpointId = unpad(name ?? '');
      if (checkpointId !== undefined) return { kind: leaf, jobId, checkpointId };
    }
    return undefined;
  }
}
