/**
 * What the tests of the etcd store share: a store on the test's own
 * prefix beside a raw etcd client, job specs and manifests as the
 * coordinator writes them, and readers of what etcd holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import type { Etcd3 } from 'etcd3';
import { CkptError } from '../../src/core/errors.js';
import type { CommitRequest } from '../../src/core/ports.js';
import { validateJobSpec } from '../../src/core/validate.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec__Output } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { Manifest, Manifest__Output } from '../../src/gen/ckpt/v1/Manifest.js';
import { codec } from '../../src/proto/index.js';
import { prefixEnd } from '../../src/store/etcd-ops.js';
import { createEtcdStore, type EtcdStore, type EtcdStoreOptions } from '../../src/store/index.js';
import { etcdClient, uniquePrefix, type TestServers } from '../helpers/index.js';

/** Encodes and decodes manifests as the store does. */
export const manifestCodec = codec<Manifest, Manifest__Output>('Manifest');

/** A store, a raw client on the same etcd, and the store's prefix. */
export interface StoreFixture {
  store: EtcdStore;
  etcd: Etcd3;
  prefix: string;
}

/**
 * A store on the test's prefix. Manifests are stored as encoded unless
 * `options` says otherwise, so that sizes and parts are those of the
 * encoding; the compression tests turn it on.
 */
export function storeFixture(
  t: ExecutionContext,
  servers: TestServers,
  options: Partial<EtcdStoreOptions> = {},
): StoreFixture {
  const prefix = uniquePrefix(t).etcd;
  const store = createEtcdStore({
    hosts: [servers.etcdUrl],
    prefix,
    compressManifestAboveBytes: Number.MAX_SAFE_INTEGER,
    ...options,
  });
  t.teardown(() => store.close());
  return { store, etcd: etcdClient(t, servers.etcdUrl), prefix };
}

/** A spec as the coordinator stores it: validated and normalised. */
export function jobSpec(jobId: string, retained = 1): JobSpec__Output {
  return validateJobSpec({
    jobId,
    tasks: [
      { taskId: 'source', labels: { lang: 'ts' } },
      { taskId: 'sink', inputs: ['source'] },
    ],
    policy: { intervalMs: 1000, retained },
    labels: { team: 'storage' },
  });
}

/** A manifest as decoding returns it, with `tasks` tasks of realistic content. */
export function manifest(jobId: string, checkpointId: number, epoch: number, tasks = 3): Manifest__Output {
  const snapshots = Array.from({ length: tasks }, (_, i) => {
    const taskId = `task-${String(i).padStart(5, '0')}`;
    return {
      taskId,
      state: {
        uri: `file:///var/lib/ckpt/${jobId}/${taskId}/chk-${checkpointId}/state-${randomBytes(12).toString('hex')}.bin`,
        sizeBytes: 1_000_000 + i,
        checksum: `sha256:${createHash('sha256').update(`${taskId}/${checkpointId}`).digest('hex')}`,
      },
      positions: [{ input: `orders/${i % 16}`, offset: checkpointId * 1_000_000 + i }],
      metrics: {
        alignmentMs: i % 7,
        syncMs: 3,
        asyncMs: 40 + (i % 11),
        stateSizeBytes: 1_000_000 + i,
        persistedBytes: 4096,
        processedRecords: 10_000 + i,
      },
    };
  });
  return manifestCodec.decode(
    manifestCodec.encode({
      jobId,
      checkpointId,
      epoch,
      snapshotType: 'SNAPSHOT_TYPE_FULL',
      triggeredAtMs: 1_700_000_000_000 + checkpointId,
      completedAtMs: 1_700_000_000_500 + checkpointId,
      tasks: snapshots,
    }),
  );
}

/** The summary the coordinator commits beside `m`. */
export function summaryOf(m: Manifest__Output): CheckpointSummary {
  return {
    jobId: m.jobId,
    checkpointId: m.checkpointId,
    epoch: m.epoch,
    state: 'CHECKPOINT_STATE_COMPLETED',
    abortReason: 'ABORT_REASON_UNSPECIFIED',
    abortMessage: '',
    snapshotType: m.snapshotType,
    manual: false,
    triggeredAtMs: m.triggeredAtMs,
    finishedAtMs: m.completedAtMs,
    totalTasks: m.tasks.length,
    acknowledgedTasks: m.tasks.length,
    stateSizeBytes: 0,
    persistedBytes: 0,
    maxAlignmentMs: 0,
    maxSnapshotMs: 0,
    manifestBytes: 0,
    manifestParts: 0,
    latestAcknowledgedAtMs: 0,
  };
}

/** A commit of `m` that deletes `subsumedCheckpointIds`. */
export function commitRequest(m: Manifest__Output, subsumedCheckpointIds: number[] = []): CommitRequest {
  return { manifest: m, summary: summaryOf(m), subsumedCheckpointIds };
}

/**
 * Every key under `prefix` with its revisions and version: every write,
 * even of the same value, changes them. Keys only, so that values too
 * large for one response can be compared.
 */
export async function dump(etcd: Etcd3, prefix: string): Promise<string[]> {
  const response = await etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: true });
  return response.kvs.map((kv) => `${kv.key.toString()} ${kv.create_revision} ${kv.mod_revision} ${kv.version}`);
}

/** The keys under `prefix`, in key order. */
export async function keysUnder(etcd: Etcd3, prefix: string): Promise<string[]> {
  return etcd.getAll().prefix(prefix).keys();
}

/** The reason of the `CkptError` that `promise` rejects with; fails the test if it does not. */
export async function reasonOf(t: ExecutionContext, promise: Promise<unknown>): Promise<string | undefined> {
  const error = await t.throwsAsync(promise, { instanceOf: CkptError });
  return error?.reason;
}
