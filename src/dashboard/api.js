/**
 * The coordinator's JSON API as the dashboard reads it. Every call answers
 * with the parsed body or throws an `ApiError` saying whether the leader is
 * out of reach (no answer, or 502/503/504) or the request itself was wrong
 * (400, 404: the page says so, the banner does not).
 */

/** How long one request may take before it counts as unanswered. */
export const REQUEST_TIMEOUT_MS = 5000;

/** A failed API call. */
export class ApiError extends Error {
  /**
   * @param {string} message what failed, with the server's own messages
   * @param {number} status the HTTP status, 0 without an answer
   */
  constructor(message, status, options) {
    super(message, options);
    this.name = 'ApiError';
    this.status = status;
  }

  /** True when the cause is the leader (or the way to it), not the request. */
  get unreachable() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/** GET `path` (under `/api/v1`) as JSON. */
export async function getJson(path, signal) {
  const url = `/api/v1${path}`;
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  let res;
  try {
    res = await fetch(url, {
      headers: { accept: 'application/json' },
      cache: 'no-store',
      signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
    });
  } catch (cause) {
    if (signal?.aborted) throw cause;
    throw new ApiError(`no answer from ${url}`, 0, { cause });
  }
  const body = await res.json().catch(() => undefined);
  if (!res.ok) {
    const errors = Array.isArray(body?.errors) ? body.errors.map(String) : [];
    throw new ApiError(errors.length > 0 ? errors.join('; ') : `${url}: HTTP ${res.status}`, res.status);
  }
  if (body === undefined) throw new ApiError(`${url}: the answer is not JSON`, res.status);
  return body;
}

/** The path of job `jobId`, with `rest` appended. */
export function jobPath(jobId, rest = '') {
  return `/jobs/${encodeURIComponent(jobId)}${rest}`;
}

/** True when `err` is an abort of our own (a page left), which is no failure. */
export function isAbort(err) {
  return err?.name === 'AbortError';
}
