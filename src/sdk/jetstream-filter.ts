/**
 * Subject filtering of a JetStream source on the worker's side, for servers
 * whose own filtering of a consumer can turn slow.
 */

/** True when `subject` matches `filter` (NATS wildcards: `*` is one token, a final `>` one or more). */
export function subjectMatches(filter: string, subject: string): boolean {
  if (!filter.includes('*') && !filter.includes('>')) return filter === subject;
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i += 1) {
    const token = f[i];
    if (token === '>') return s.length > i;
    if (i >= s.length || (token !== '*' && token !== s[i])) return false;
  }
  return f.length === s.length;
}

/**
 * True for nats-server versions before 2.10, whose file store counts a
 * subject-filtered consumer's pending messages wrongly: when the consumer's
 * position is in the first half of a message block, the count comes back
 * without its last sequence, so the consumer counts again, by a scan of the
 * block, for every message it delivers from then on, until it passes the
 * middle of the block (measured on 2.9.10: 25,000 messages on two subjects,
 * read by one consumer per subject in 0.6 s, take 19 s and 12.6 s of the
 * server's CPU after one consumer info at the 1,000th message). Any count
 * sets it off: a consumer created inside the stream (a source resuming, an
 * ordered consumer re-created), a consumer info (nats.js asks for one when
 * heartbeats are missed, as while a source is held by flow control;
 * monitoring asks too). A source reads every subject there and filters
 * itself.
 */
export function serverFiltersSlowly(serverVersion: string | undefined): boolean {
  const match = /^v?(\d+)\.(\d+)\./.exec(serverVersion ?? '');
  if (match === null) return false;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  return major < 2 || (major === 2 && minor < 10);
}
