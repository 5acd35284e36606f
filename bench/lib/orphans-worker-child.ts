/**
 * A worker process of the `orphans` benchmark: one SDK worker running a
 * source and a sink of the job, both with keyed state, whose snapshots go
 * to a JetStream Object Store bucket or a local directory (fsync on)
 * through a backend that misbehaves as
 * the parent says: the sink declines every k-th checkpoint (its upload
 * fails), or stalls its upload past the checkpoint timeout (the piece is
 * stored, the acknowledgement comes too late). The parent SIGKILLs the
 * process while an upload is under way, so every upload is announced.
 *
 * Requests: `start` (an `OrphanWorkerStart`) starts the worker; `calm`
 * turns the faults off; `close` stops the worker. Notices: an
 * `UploadNotice` when an upload starts, ends or fails.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import { silentLogger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  createWorker,
  type SourceMessage,
  type SourceTask,
  type StateBackend,
  type Task,
  type Worker,
} from '../../src/sdk/index.js';
import { notifyParent, serveParent, type ChildRequest } from './bench-child.js';

/** How the sink misbehaves while faults are on. */
export interface UploadFaults {
  /** The sink's upload of every checkpoint whose id is a multiple fails (0: never). */
  declineEvery: number;
  /** The sink's upload of every checkpoint whose id is a multiple stalls after storing (0: never). */
  stallEvery: number;
  /** How long a stalled upload waits after its piece is stored. */
  stallMs: number;
}

/** A bucket of the object store, or a directory of this machine, the worker's own. */
export type OrphanStore = { kind: 'nats-obj'; bucket: string } | { kind: 'dir'; dir: string };

/** What `start` runs. */
export interface OrphanWorkerStart {
  coordinator: string;
  nats: string[];
  jobId: string;
  workerId: string;
  /** Where the snapshots go. */
  store: OrphanStore;
  /** The source task's id; it emits to `sinkId`. */
  sourceId: string;
  sinkId: string;
  /** Distinct keys the sink counts; each holds `valueBytes` of padding. */
  keys: number;
  valueBytes: number;
  /** Records the source emits per tick, and the ms between ticks. */
  recordsPerTick: number;
  tickMs: number;
  faults: UploadFaults;
}

/** One upload as the backend saw it. */
export interface UploadNotice {
  kind: 'upload';
  phase: 'start' | 'stored' | 'failed';
  workerId: string;
  jobId: string;
  taskId: string;
  checkpointId: number;
  epoch: number;
  bytes: number;
  /** Set once stored. */
  uri?: string;
  /** Set when a fault made it fail or stall. */
  fault?: 'declined' | 'stalled';
}

let worker: Worker | undefined;
let nc: NatsConnection | undefined;
let faultsOn = true;

/** Ticks `recordsPerTick` records every `tickMs`, resuming after its restored offset; keeps its offset as state too. */
function tickingSource(plan: OrphanWorkerStart): SourceTask<number> {
  return {
    async *read(positions, ctx): AsyncIterable<SourceMessage<number>> {
      let offset = positions.find((p) => p.input === 'ticks')?.offset ?? 0;
      while (!ctx.signal.aborted) {
        await delay(plan.tickMs, undefined, { signal: ctx.signal }).catch(() => undefined);
        if (ctx.signal.aborted) return;
        offset += 1;
        yield { input: 'ticks', offset, value: offset };
      }
    },
    handle(message, ctx) {
      ctx.state.set('ticks', message.value);
      for (let i = 0; i < plan.recordsPerTick; i++) {
        const n = message.value * plan.recordsPerTick + i;
        ctx.emit(`k${(n * 7919) % plan.keys}`, { to: plan.sinkId });
      }
    },
  };
}

/** Counts records per key in keyed state, each entry padded to `valueBytes`. */
function countingSink(plan: OrphanWorkerStart): Task {
  return {
    process(record, ctx) {
      const key = record.text();
      const seen = (ctx.state.get(key) as { n: number } | undefined)?.n ?? 0;
      const n = seen + 1;
      ctx.state.set(key, { n, pad: `${key}:${n}:`.padEnd(plan.valueBytes, String.fromCharCode(97 + (n % 26))) });
    },
  };
}

/** `inner`, announcing every upload to the parent and misbehaving for the sink while faults are on. */
function announcing(inner: StateBackend, plan: OrphanWorkerStart): StateBackend {
  const { declineEvery, stallEvery, stallMs } = plan.faults;
  const hits = (every: number, id: number): boolean => every > 0 && id % every === 0;
  return {
    async put(key, bytes, signal) {
      const base = { kind: 'upload', workerId: plan.workerId, ...key, bytes: bytes.length } as const;
      const sinkFaults = faultsOn && key.taskId === plan.sinkId;
      notifyParent({ ...base, phase: 'start' } satisfies UploadNotice);
      if (sinkFaults && hits(declineEvery, key.checkpointId)) {
        notifyParent({ ...base, phase: 'failed', fault: 'declined' } satisfies UploadNotice);
        throw new Error(`upload of checkpoint ${key.checkpointId} refused (benchmark fault)`);
      }
      let handle;
      try {
        handle = await inner.put(key, bytes, signal);
      } catch (err) {
        notifyParent({ ...base, phase: 'failed' } satisfies UploadNotice);
        throw err;
      }
      const stalled = sinkFaults && hits(stallEvery, key.checkpointId);
      notifyParent({ ...base, phase: 'stored', uri: handle.uri, ...(stalled ? { fault: 'stalled' } : {}) });
      if (stalled) await delay(stallMs);
      return handle;
    },
    get: (handle, signal, owner) => inner.get(handle, signal, owner),
    discard: (jobId, uris) => inner.discard(jobId, uris),
    listPieces: (jobId) => inner.listPieces(jobId),
    ...(inner.discardStaleUploads === undefined ? {} : { discardStaleUploads: inner.discardStaleUploads.bind(inner) }),
    close: () => inner.close(),
  };
}

async function start(plan: OrphanWorkerStart): Promise<void> {
  if (worker !== undefined) throw new Error('a worker runs already');
  nc = await connectNats(plan.nats, `bench-orphans-${plan.workerId}`);
  const backend =
    plan.store.kind === 'dir'
      ? await createLocalDirectoryBackend({ dir: plan.store.dir, fsync: true })
      : await createObjectStoreBackend({ connection: nc, bucket: plan.store.bucket });
  worker = createWorker({
    coordinator: plan.coordinator,
    nats: plan.nats,
    jobId: plan.jobId,
    workerId: plan.workerId,
    state: announcing(backend, plan),
    logger: silentLogger(),
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
  });
  worker.addTask(plan.sourceId, tickingSource(plan)).addTask(plan.sinkId, countingSink(plan));
  await worker.start();
}

async function close(): Promise<void> {
  const [running, conn] = [worker, nc];
  [worker, nc] = [undefined, undefined];
  await running?.stop();
  await conn?.close();
}

serveParent(
  {
    start: (request: ChildRequest) => start(request as unknown as OrphanWorkerStart),
    calm: () => {
      faultsOn = false;
      return Promise.resolve();
    },
    close,
  },
  close,
);
