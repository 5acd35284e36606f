/**
 * What the `orphans` benchmark counts at the end: the job's pieces in a
 * JetStream Object Store bucket or the workers' directories against what
 * its retained checkpoints name (read through the query API), every named
 * piece read back verified, and what killed uploads left that no listing
 * of pieces shows: chunks in the bucket's stream that belong to no object
 * (an upload killed before its metadata was written), temporary files in
 * a directory (a write killed before its rename).
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import type { QueryClient } from '../../src/client/index.js';
import { handleUris } from '../../src/core/shared-state-registry.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import { createLocalDirectoryBackend, createObjectStoreBackend, type StateBackend } from '../../src/sdk/index.js';

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

/** What uploads left in a store that no listing of pieces shows. */
export interface Stray {
  /** Uploads (object ids, temporary files) that left something. */
  uploads: number;
  bytes: number;
  /** One line per upload, for people. */
  details: string[];
}

/** One store of the job's pieces as the count sees it. */
export interface StoreView {
  /** What it is, for the conditions. */
  readonly text: string;
  /** Every piece of the job, by uri. */
  list(jobId: string): Promise<string[]>;
  /** Reads a handle back, verified; rejects when the piece is missing or corrupt. */
  verify(handle: StateHandle__Output, jobId: string): Promise<void>;
  stray(): Promise<Stray>;
  close(): Promise<void>;
}

/** Reads every retained handle back, verified (size and sha256). */
export async function verifyRetained(view: StoreView, jobId: string, retained: Retained): Promise<MissingPiece[]> {
  const missing: MissingPiece[] = [];
  for (const handle of retained.handles.values()) {
    try {
      await view.verify(handle, jobId);
    } catch (err) {
      missing.push({ uri: handle.uri, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return missing;
}

/** The job's listed pieces that no retained manifest names. */
export async function unnamedPieces(view: StoreView, jobId: string, retained: Retained): Promise<string[]> {
  const named = new Set(handleUris([...retained.handles.values()]));
  return (await view.list(jobId)).filter((uri) => !named.has(uri));
}

/** The object store bucket `bucket`. */
export async function objectStoreView(nc: NatsConnection, bucket: string): Promise<StoreView> {
  const backend = await createObjectStoreBackend({ connection: nc, bucket });
  return {
    text: `bucket ${bucket}`,
    list: async (jobId) => (await backend.listPieces(jobId)).map((p) => p.uri),
    verify: async (handle, jobId) => void (await backend.get(handle, undefined, { jobId })),
    stray: () => strayChunks(nc, bucket),
    close: () => backend.close(),
  };
}

/**
 * Counts the chunk messages of `bucket` whose upload id no object's
 * metadata names: uploads that died before their metadata was written.
 * Reads the whole bucket's stream subjects; meant for a benchmark's bucket.
 */
async function strayChunks(nc: NatsConnection, bucket: string): Promise<Stray> {
  const store = await new Objm(nc).open(bucket);
  const owned = new Set((await store.list()).map((info) => info.nuid));
  const jsm = await jetstreamManager(nc);
  const stream = `OBJ_${bucket}`;
  const prefix = `$O.${bucket}.C.`;
  const info = await jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
  const subjects = Object.entries(info.state.subjects ?? {}).filter(([s]) => !owned.has(s.slice(prefix.length)));
  const stray: Stray = { uploads: subjects.length, bytes: 0, details: [] };
  for (const [subject, count] of subjects) {
    let bytes = 0;
    let seq = 0;
    for (let i = 0; i < count; i++) {
      const m = await jsm.direct.getMessage(stream, { next_by_subj: subject, seq: seq + 1 });
      if (m === null) break;
      bytes += m.data.length;
      seq = m.seq;
    }
    stray.details.push(`${subject}: ${count} chunks, ${bytes} B`);
    stray.bytes += bytes;
  }
  return stray;
}

/** The workers' directories, one backend each; a piece is read through the one whose directory holds it. */
export async function directoryView(dirs: readonly string[]): Promise<StoreView> {
  const backends = await Promise.all(
    dirs.map(async (dir) => ({ dir: await realpath(dir), backend: await createLocalDirectoryBackend({ dir }) })),
  );
  const owner = (uri: string): StateBackend => {
    const path = fileURLToPath(uri);
    const found = backends.find((b) => path.startsWith(b.dir + sep));
    if (found === undefined) throw new Error(`${uri} is in none of the workers' directories`);
    return found.backend;
  };
  return {
    text: `directories ${dirs.join(', ')}`,
    list: async (jobId) =>
      (await Promise.all(backends.map((b) => b.backend.listPieces(jobId)))).flat().map((p) => p.uri),
    verify: async (handle, jobId) => void (await owner(handle.uri).get(handle, undefined, { jobId })),
    stray: () => temporaryFiles(backends.map((b) => b.dir)),
    close: async () => void (await Promise.all(backends.map((b) => b.backend.close()))),
  };
}

/** Temporary files of writes that never got renamed into place. */
async function temporaryFiles(dirs: readonly string[]): Promise<Stray> {
  const stray: Stray = { uploads: 0, bytes: 0, details: [] };
  for (const dir of dirs) {
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.tmp')) continue;
      const path = join(entry.parentPath, entry.name);
      const { size } = await stat(path);
      stray.uploads += 1;
      stray.bytes += size;
      stray.details.push(`${path}: ${size} B`);
    }
  }
  return stray;
}
