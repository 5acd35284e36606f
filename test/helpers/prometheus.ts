/**
 * Reading what a `/metrics` endpoint serves: fetching it, picking samples
 * out of Prometheus's text format, and `promtool check metrics` on it.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What an HTTP request to an endpoint got. */
export interface HttpAnswer {
  status: number;
  body: string;
  type: string;
}

/** `method path` on `address` (host:port). */
export async function httpGet(address: string, path: string, method = 'GET'): Promise<HttpAnswer> {
  const res = await fetch(`http://${address}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** Sends bytes that are not HTTP at all to `address` and resolves once the server dropped the connection. */
export function sendJunk(address: string): Promise<void> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return new Promise<void>((resolve) => {
    const socket = connect(Number(address.slice(at + 1)), host, () => socket.end('\u0000\u00ff not http\r\n\r\n'));
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
}

export { sample } from './metrics-text.js';

/**
 * Runs `promtool check metrics` on the lines of `text` that mention
 * `prefix` (other collectors' lines are not ours to lint). `ok` is its
 * verdict, `out` what it said: nothing when it has no complaint.
 */
export async function promtoolCheck(text: string, prefix: string): Promise<{ ok: boolean; out: string }> {
  const lines = text
    .split('\n')
    .filter((l) => l.includes(prefix))
    .join('\n');
  const child = run('promtool', ['check', 'metrics']);
  child.child.stdin?.end(`${lines}\n`);
  return child.then(
    (r) => ({ ok: true, out: r.stdout + r.stderr }),
    (err: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
  );
}
