/**
 * Scenario 6, what a checkpoint costs etcd: requests and bytes per
 * checkpoint of a 1024-task job, read from etcd's own Prometheus counters
 * (`/metrics` of etcd 3.4) before and after a run of checkpoints. The
 * design promises one etcd transaction per checkpoint; the id block
 * reservation (one write per 1000 ids) happens in the warm-up.
 */
import { resolveConfig } from '../src/config/index.js';
import { createCoordinatorClient } from '../src/client/index.js';
import { silentLogger } from '../src/log/index.js';
import { runCoordinator } from '../src/server/run.js';
import { startSimulatedWorker, type SimulatedWorker } from '../test/sim/index.js';
import { sourcesJob, timedCheckpoint, waitRunning } from './lib/bench-job.js';
import { significant } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';
import type { SystemFacts } from './lib/system.js';

const TASKS = 1024;
const WORKERS = 4;
const WARMUP_CHECKPOINTS = 3;

/** What a row is held to: at most `max` per checkpoint. */
interface Target {
  max: number;
  text: string;
}

/** At most 64 KiB written per checkpoint of 1024 tasks. */
const WRITE_BYTES_TARGET = 64 * 1024;

/** The etcd counters read, with the row each becomes and its unit. */
const COUNTERS: ReadonlyArray<{ metric: string; id: string; unit: string; what: string; target?: Target }> = [
  {
    metric: 'etcd_server_proposals_committed_total',
    id: 'write_requests',
    unit: 'transactions',
    what: 'raft proposals committed (every write request: put, delete or transaction with writes)',
    target: { max: 1, text: 'one etcd transaction per checkpoint' },
  },
  { metric: 'etcd_mvcc_txn_total', id: 'txns', unit: 'transactions', what: 'multi-operation transactions' },
  { metric: 'etcd_mvcc_put_total', id: 'puts', unit: 'puts', what: 'keys put' },
  { metric: 'etcd_mvcc_delete_total', id: 'deletes', unit: 'deletes', what: 'delete operations' },
  { metric: 'etcd_mvcc_range_total', id: 'ranges', unit: 'reads', what: 'range reads' },
  {
    metric: 'etcd_debugging_mvcc_total_put_size_in_bytes',
    id: 'put_bytes',
    unit: 'bytes',
    what: 'bytes of keys and values put',
    target: { max: WRITE_BYTES_TARGET, text: 'at most 64 KiB of keys and values written per checkpoint' },
  },
  {
    metric: 'etcd_disk_wal_write_bytes_total',
    id: 'wal_bytes',
    unit: 'bytes',
    what:
      "bytes etcd counts as written to its WAL. etcd 3.4's WAL encoder adds a record's bytes to this counter " +
      'when it hands them to its page writer and again when that writer flushes what it buffered, and it ' +
      'buffers records below its 128 KiB watermark: a commit of 48.6 KB put counts about 97.9 KB here, ' +
      'one of 143.0 KB (uncompressed) 145.6 KB (measured on this etcd); so for the compressed root this is ' +
      'about twice what reaches the disk',
  },
  {
    metric: 'etcd_network_client_grpc_received_bytes_total',
    id: 'client_bytes',
    unit: 'bytes',
    what: 'bytes etcd received from its clients',
  },
];

/** Measures `etcd.n1024.*` per checkpoint. */
export const etcdCost: Scenario = async (ctx) => {
  const checkpoints = ctx.quick === true ? 5 : 20;
  const config = resolveConfig(
    {
      etcd: ctx.etcd,
      nats: ctx.nats,
      listen: '127.0.0.1:0',
      etcdPrefix: `/${ctx.prefix}/`,
      subjectPrefix: ctx.prefix,
      stateUriSchemes: 'file,nats-obj,sim',
    },
    {},
  );
  const coordinator = await runCoordinator(config, silentLogger());
  const client = createCoordinatorClient(coordinator.address);
  const workers: SimulatedWorker[] = [];
  try {
    const jobId = 'cost';
    const spec = sourcesJob(jobId, TASKS);
    await client.submitJob({ spec });
    workers.push(...(await startWorkers(ctx, coordinator.address, spec)));
    await waitRunning(client, jobId, TASKS);
    for (let i = 0; i < WARMUP_CHECKPOINTS; i++) await timedCheckpoint(client, jobId);
    const before = await readCounters(ctx.etcd[0]!);
    let manifestBytes = 0;
    for (let i = 0; i < checkpoints; i++) manifestBytes = (await timedCheckpoint(client, jobId)).summary.manifestBytes;
    const after = await readCounters(ctx.etcd[0]!);
    ctx.log(`${checkpoints} checkpoints of ${TASKS} tasks, manifest ${manifestBytes} bytes`);
    return costRows(before, after, checkpoints, manifestBytes, ctx.system);
  } finally {
    await Promise.allSettled(workers.map((w) => w.close()));
    client.close();
    await coordinator.stop();
  }
};

async function startWorkers(
  ctx: ScenarioContext,
  address: string,
  spec: ReturnType<typeof sourcesJob>,
): Promise<SimulatedWorker[]> {
  const taskIds = (spec.tasks ?? []).map((t) => t.taskId ?? '');
  const perWorker = Math.ceil(taskIds.length / WORKERS);
  return Promise.all(
    Array.from({ length: WORKERS }, (_, i) =>
      startSimulatedWorker({
        coordinator: address,
        nats: ctx.nats,
        subjectPrefix: ctx.prefix,
        jobId: spec.jobId ?? '',
        spec,
        workerId: `cost-${i}`,
        taskIds: taskIds.slice(i * perWorker, (i + 1) * perWorker),
        logger: silentLogger(),
      }),
    ),
  );
}

/** The unlabelled counters of etcd's `/metrics`, by name. */
async function readCounters(etcdUrl: string): Promise<Map<string, number>> {
  const response = await fetch(new URL('/metrics', etcdUrl));
  if (!response.ok) throw new Error(`etcd /metrics answered ${response.status}`);
  const counters = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-z_]+) (\S+)$/.exec(line);
    if (match !== null) counters.set(match[1]!, Number(match[2]));
  }
  return counters;
}

function costRows(
  before: Map<string, number>,
  after: Map<string, number>,
  checkpoints: number,
  manifestBytes: number,
  system: SystemFacts,
): Row[] {
  const setup =
    `per checkpoint, averaged over ${checkpoints} sequential checkpoints of a job of ${TASKS} source tasks ` +
    `(manifest encoding ${manifestBytes} bytes, stored DEFLATE-compressed inline in its root, as the store does ` +
    `above compressManifestAboveBytes (8192); 1 checkpoint retained) after ${WARMUP_CHECKPOINTS} warm-up; ` +
    `${WORKERS} simulated workers; coordinator in the benchmark process; difference of ${system.etcd}'s /metrics`;
  return COUNTERS.map((counter) => {
    const start = before.get(counter.metric);
    const end = after.get(counter.metric);
    if (start === undefined || end === undefined) throw new Error(`etcd /metrics has no ${counter.metric}`);
    const value = significant((end - start) / checkpoints);
    const target = counter.target;
    return {
      id: `etcd.n${TASKS}.${counter.id}`,
      value,
      unit: counter.unit,
      target: target?.max ?? null,
      ratio: target === undefined ? null : significant(value / target.max, 3),
      met: target === undefined ? null : value <= target.max,
      conditions: `${counter.metric}: ${counter.what}; ${target === undefined ? '' : `target: ${target.text}; `}${setup}`,
    };
  });
}
