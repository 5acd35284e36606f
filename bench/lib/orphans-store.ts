/**
 * What the `orphans` benchmark counts at the end: the job's pieces in the
 * JetStream Object Store bucket against what its retained checkpoints name
 * (read through the query API), every named piece read back verified, and
 * the chunks in the bucket's stream that belong to no object at all (an
 * upload killed before its metadata was written leaves its chunks, which
 * no listing of objects shows).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import type { QueryClient } from '../../src/client/index.js';
import { handleUris } from '../../src/core/shared-state-registry.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import type { StateBackend } from '../../src/sdk/index.js';

/** The job's retained checkpoints and every handle their manifests name, shared pieces included. */
export interface Retained {
  checkpointIds: number[];
  /** Distinct handles by uri. */
  handles: Map<string, StateHandle__Output>;
}

/** Reads the retained manifests of `jobId`. */
export async function readRetained(query: QueryClient, jobId: string): Promise<Retained> {
  const { checkpoints } = await query.listCheckpoints({ jobId, pageSize: 1000 });
  const retained: Retained = { checkpointIds: [], handles: new Map() };
  for (const s of checkpoints.filter((c) => c.state === 'CHECKPOINT_STATE_COMPLETED')) {
    const { manifest } = await query.getCheckpoint({ jobId, checkpointId: s.checkpointId });
    if (manifest === null) continue; // completed, no longer retained
    retained.checkpointIds.push(Number(s.checkpointId));
    const stack = manifest.tasks.flatMap((t) => (t.state === null ? [] : [t.state]));
    for (let h = stack.pop(); h !== undefined; h = stack.pop()) {
      if (h.uri !== '') retained.handles.set(h.uri, h);
      stack.push(...h.shared);
    }
  }
  return retained;
}

/** A retained piece that did not read back. */
export interface MissingPiece {
  uri: string;
  error: string;
}

/** Reads every retained handle back through `backend`, verified (size and sha256). */
export async function verifyRetained(
  backend: StateBackend,
  jobId: string,
  retained: Retained,
): Promise<MissingPiece[]> {
  const missing: MissingPiece[] = [];
  for (const handle of retained.handles.values()) {
    try {
      await backend.get(handle, undefined, { jobId });
    } catch (err) {
      missing.push({ uri: handle.uri, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return missing;
}

/** The job's listed pieces that no retained manifest names. */
export async function unnamedPieces(backend: StateBackend, jobId: string, retained: Retained): Promise<string[]> {
  const named = new Set(handleUris([...retained.handles.values()]));
  return (await backend.listPieces(jobId)).map((p) => p.uri).filter((uri) => !named.has(uri));
}

/** Chunks in the bucket's stream that no object (live or deleted) owns. */
export interface StrayChunks {
  /** Distinct uploads (object ids) whose chunks are left. */
  uploads: number;
  messages: number;
  bytes: number;
  /** Each upload's chunk subject, its chunks and their bytes. */
  subjects: Array<{ subject: string; messages: number; bytes: number }>;
}

/**
 * Counts the chunk messages of `bucket` whose upload id no object's
 * metadata names: uploads that died before their metadata was written.
 * Reads the whole bucket's stream subjects; meant for a benchmark's bucket.
 */
export async function strayChunks(nc: NatsConnection, bucket: string): Promise<StrayChunks> {
  const store = await new Objm(nc).open(bucket);
  const owned = new Set((await store.list()).map((info) => info.nuid));
  const jsm = await jetstreamManager(nc);
  const stream = `OBJ_${bucket}`;
  const prefix = `$O.${bucket}.C.`;
  const info = await jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
  const subjects = Object.entries(info.state.subjects ?? {}).filter(([s]) => !owned.has(s.slice(prefix.length)));
  const stray: StrayChunks = { uploads: subjects.length, messages: 0, bytes: 0, subjects: [] };
  for (const [subject, count] of subjects) {
    let bytes = 0;
    let seq = 0;
    for (let i = 0; i < count; i++) {
      const m = await jsm.direct.getMessage(stream, { next_by_subj: subject, seq: seq + 1 });
      if (m === null) break;
      bytes += m.data.length;
      seq = m.seq;
    }
    stray.subjects.push({ subject, messages: count, bytes });
    stray.messages += count;
    stray.bytes += bytes;
  }
  return stray;
}
