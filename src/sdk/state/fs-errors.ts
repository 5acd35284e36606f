/**
 * The one place where file system errors of the local directory backend
 * become `CkptError`s. A full disk, exhausted file descriptors or a busy
 * file may clear up and are UNAVAILABLE and retryable; missing permissions
 * or a read-only file system are UNAVAILABLE and final; the rest INTERNAL.
 */
import { CkptError, type ErrorIds } from '../../core/errors.js';

/** What a file system call was doing, for the error message and ids. */
export interface FsCallContext extends ErrorIds {
  /** A short description naming the path or uri, e.g. `write /var/ckpt/j/t/3-1.snap`. */
  operation: string;
}

const RETRYABLE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EINTR']);
const FORBIDDEN_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);

/** The `code` of a Node.js system error, if `err` is one. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Translates anything a file system call threw; a `CkptError` passes unchanged. */
export function translateFsError(err: unknown, context: FsCallContext): CkptError {
  if (err instanceof CkptError) return err;
  const { operation, ...ids } = context;
  const detail = err instanceof Error ? err.message : String(err);
  const message = `${operation} failed: ${detail}`;
  const code = errorCode(err) ?? '';
  if (RETRYABLE_CODES.has(code)) return new CkptError('UNAVAILABLE', message, { ...ids, cause: err, retryable: true });
  if (FORBIDDEN_CODES.has(code)) return new CkptError('UNAVAILABLE', message, { ...ids, cause: err });
  if (code === 'ENAMETOOLONG') return new CkptError('MALFORMED', message, { ...ids, cause: err });
  return new CkptError('INTERNAL', message, { ...ids, cause: err });
}

/** Runs one file system call and translates whatever it throws. */
export async function callFs<T>(context: FsCallContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw translateFsError(err, context);
  }
}
