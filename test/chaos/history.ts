/**
 * Reading etcd's whole history: a watch over every key from revision 1
 * (the suite's etcd is its own and never compacted), until a sentinel key
 * written afterwards arrives, so that every earlier change has been seen.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3, type IKeyValue, type IOptions } from 'etcd3';
import { MAX_RESPONSE_BYTES } from '../../src/store/index.js';
import type { HistoryEvent } from './history-check.js';

/** Default of `readHistory`'s `timeoutMs`. */
export const DEFAULT_HISTORY_TIMEOUT_MS = 60_000;

/** The key the sentinel is written to; outside every prefix the coordinators use. */
export const SENTINEL_KEY = '/chaos-history-end';

/** Every change to every key since revision 1, in revision order; with `security`, as a user that may read every key and write the sentinel. */
export async function readHistory(
  etcdUrls: readonly string[],
  timeoutMs = DEFAULT_HISTORY_TIMEOUT_MS,
  security: Pick<IOptions, 'credentials' | 'auth'> = {},
): Promise<HistoryEvent[]> {
  const client = new Etcd3({
    ...security,
    hosts: [...etcdUrls],
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + 5_000) }),
    // etcd sends up to 1000 revisions of history in one watch response: far more than
    // grpc-js's default 4 MiB once commits carry statistics records. A response refused for
    // its size would make the watcher start again from the present, silently skipping history.
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RESPONSE_BYTES * 4 },
  });
  try {
    return await watchUntilSentinel(client, timeoutMs);
  } finally {
    client.close();
  }
}

async function watchUntilSentinel(client: Etcd3, timeoutMs: number): Promise<HistoryEvent[]> {
  const events: HistoryEvent[] = [];
  const token = randomBytes(8).toString('hex');
  const all = { start: Buffer.from([0]), end: Buffer.from([0]) };
  const watcher = await client.watch().inRange(all).startRevision('1').create();
  try {
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd history not read within ${timeoutMs} ms`)), timeoutMs);
      const onChange = (type: HistoryEvent['type'], kv: IKeyValue): void => {
        const key = kv.key.toString();
        if (key === SENTINEL_KEY) {
          if (kv.value.toString() === token) {
            clearTimeout(timer);
            resolve();
          }
          return;
        }
        events.push(toEvent(type, kv));
      };
      watcher.on('put', (kv) => onChange('put', kv));
      watcher.on('delete', (kv) => onChange('delete', kv));
      watcher.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    await client.put(SENTINEL_KEY).value(token);
    await done;
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
  return dedupe(events);
}

function toEvent(type: HistoryEvent['type'], kv: IKeyValue): HistoryEvent {
  return {
    type,
    key: kv.key.toString(),
    revision: Number(kv.mod_revision),
    value: type === 'put' ? Uint8Array.from(kv.value) : new Uint8Array(),
    createRevision: Number(kv.create_revision),
    lease: kv.lease,
  };
}

/**
 * A watch that reconnects resumes after the last revision it delivered, but
 * may deliver that revision's events again; keep each (revision, key) once.
 */
function dedupe(events: HistoryEvent[]): HistoryEvent[] {
  const seen = new Set<string>();
  const out: HistoryEvent[] = [];
  for (const e of events) {
    const id = `${e.revision}\u0000${e.key}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(e);
  }
  return out.sort((a, b) => a.revision - b.revision);
}
