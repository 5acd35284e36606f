/**
 * Scenario 1, the floor: what the bare systems under ckpt cost on this
 * machine, with no ckpt code in the path. One etcd transaction carrying an
 * uncompressed 1024-task manifest, a NATS request-reply round trip, a gRPC
 * unary round trip and the message rate of one bidirectional gRPC stream,
 * which the acknowledgement intake is held to. (The checkpoint latency
 * scenario measures its own floor per task count, beside each checkpoint:
 * `lib/checkpoint-floor.ts`.)
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../src/bus/index.js';
import type { Manifest } from '../src/gen/ckpt/v1/Manifest.js';
import type { ManifestRoot } from '../src/gen/ckpt/v1/ManifestRoot.js';
import { codec } from '../src/proto/index.js';
import { simulatedSnapshot } from '../test/sim/index.js';
import { pad } from '../src/store/index.js';
import { STREAM_WINDOW, streamRate } from './lib/bare-stream.js';
import { forkBenchChild } from './lib/bench-child.js';
import { createEchoClient } from './lib/echo-service.js';
import { significant, spread, median } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';

/** Tasks in the manifest the etcd transaction carries. */
const MANIFEST_TASKS = 1024;
/** Deadline of every etcd call, as the coordinator's default `etcdTimeoutMs`. */
const ETCD_DEADLINE_MS = 5000;
/** Bytes of the NATS request, about a `Trigger` message. */
const NATS_PAYLOAD_BYTES = 64;
/** Bytes of payload in each gRPC message. */
const GRPC_PAYLOAD_BYTES = 32;

/** How many times each figure is measured. */
interface Repetitions {
  etcdTxns: number;
  natsRequests: number;
  unaryCalls: number;
  streamMessages: number;
  streamRuns: number;
}

const FULL: Repetitions = {
  etcdTxns: 300,
  natsRequests: 3000,
  unaryCalls: 3000,
  streamMessages: 100_000,
  streamRuns: 3,
};
const QUICK: Repetitions = { etcdTxns: 40, natsRequests: 300, unaryCalls: 300, streamMessages: 10_000, streamRuns: 1 };

const ECHO_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'lib', 'echo-child.ts');

/** Measures the floor; its rows are `floor.*`. */
export const floor: Scenario = async (ctx) => {
  const reps = ctx.quick === true ? QUICK : FULL;
  const subject = `${ctx.prefix}.echo`;
  const echo = forkBenchChild('echo server', ECHO_CHILD);
  try {
    const address = await echo.request<string>({ kind: 'start', nats: ctx.nats, subject });
    ctx.log(`echo server at ${address} (gRPC) and on ${subject} (NATS)`);
    return [
      ...(await measureEtcd(ctx, reps.etcdTxns)),
      ...(await measureNats(ctx, subject, reps.natsRequests)),
      ...(await measureGrpc(ctx, address, reps)),
    ];
  } finally {
    await echo.stop();
  }
};

/** A manifest of `tasks` simulated tasks, encoded as the coordinator stores it. */
function encodedManifest(tasks: number): Uint8Array {
  const jobId = 'floor';
  const manifest: Manifest = {
    jobId,
    checkpointId: 1,
    epoch: 1,
    snapshotType: 'SNAPSHOT_TYPE_FULL',
    triggeredAtMs: Date.now(),
    completedAtMs: Date.now(),
    tasks: Array.from({ length: tasks }, (_, i) =>
      simulatedSnapshot({
        jobId,
        taskId: `t${String(i).padStart(5, '0')}`,
        checkpointId: 1,
        stateBytes: 1024,
        source: true,
        alignmentMs: 0,
      }),
    ),
  };
  const encoded = codec<Manifest, unknown>('Manifest').encode(manifest);
  const root: ManifestRoot = { checkpointId: 1, epoch: 1, inline: encoded, manifestBytes: encoded.length };
  return codec<ManifestRoot, unknown>('ManifestRoot').encode(root);
}

/**
 * A commit-shaped transaction, repeated: compare `latest < id`, put the
 * root (the inline manifest), a summary-sized value and `latest`, delete
 * the previous root.
 */
async function measureEtcd(ctx: ScenarioContext, txns: number): Promise<Row[]> {
  const client = new Etcd3({
    hosts: ctx.etcd,
    defaultCallOptions: () => ({ deadline: new Date(Date.now() + ETCD_DEADLINE_MS) }),
  });
  try {
    const root = Buffer.from(encodedManifest(MANIFEST_TASKS));
    const summary = Buffer.alloc(200, 7);
    const key = (name: string): string => `/${ctx.prefix}/floor/${name}`;
    await client.put(key('latest')).value(pad(0));
    const commit = async (id: number): Promise<void> => {
      const response = await client
        .if(key('latest'), 'Value', '<', pad(id))
        .then(
          client.put(key(`root/${pad(id)}`)).value(root),
          client.put(key(`summary/${pad(id)}`)).value(summary),
          client.put(key('latest')).value(pad(id)),
          client.delete().key(key(`root/${pad(id - 1)}`)),
        )
        .commit();
      if (!response.succeeded) throw new Error(`floor transaction ${id} was refused`);
    };
    const warmup = Math.ceil(txns / 10);
    for (let id = 1; id <= warmup; id++) await commit(id);
    const samples = await timeEach(txns, (i) => commit(warmup + 1 + i));
    ctx.log(`etcd: ${txns} transactions with a ${root.length}-byte root`);
    const conditions =
      `${txns} sequential txns (after ${warmup} warm-up) on single-member ${ctx.system.etcd}, etcd3 client with a ` +
      `${ETCD_DEADLINE_MS} ms deadline: compare latest < id; put root (${root.length} B, the inline encoded ` +
      `manifest of ${MANIFEST_TASKS} simulated tasks), summary (${summary.length} B), latest; delete the previous root`;
    return percentileRows('floor.etcd_txn', samples, conditions);
  } finally {
    client.close();
  }
}

/** Request-reply round trips to a responder in the echo process. */
async function measureNats(ctx: ScenarioContext, subject: string, requests: number): Promise<Row[]> {
  const nc: NatsConnection = await connectNats(ctx.nats, 'bench-floor');
  try {
    const payload = new Uint8Array(NATS_PAYLOAD_BYTES);
    const request = async (): Promise<void> => void (await nc.request(subject, payload, { timeout: 5000 }));
    await timeEach(Math.ceil(requests / 10), request);
    const samples = await timeEach(requests, request);
    ctx.log(`NATS: ${requests} round trips`);
    const conditions =
      `${requests} sequential request-reply round trips of ${NATS_PAYLOAD_BYTES} B on ${ctx.system.nats} ` +
      `(@nats-io/transport-node), responder in another process`;
    return percentileRows('floor.nats_rtt', samples, conditions);
  } finally {
    await nc.close();
  }
}

/** Unary round trips and the stream rate against the bare echo server. */
async function measureGrpc(ctx: ScenarioContext, address: string, reps: Repetitions): Promise<Row[]> {
  const client = createEchoClient(address);
  try {
    const payload = Buffer.alloc(GRPC_PAYLOAD_BYTES, 1);
    const unary = (seq: number): Promise<void> =>
      new Promise((resolve, reject) =>
        client.Unary({ seq, payload }, (err) => (err === null ? resolve() : reject(err))),
      );
    await timeEach(Math.ceil(reps.unaryCalls / 10), unary);
    const samples = await timeEach(reps.unaryCalls, unary);
    const rates: number[] = [];
    for (let run = 0; run < reps.streamRuns; run++) rates.push(await streamRate(client, reps.streamMessages, payload));
    ctx.log(`gRPC: ${reps.unaryCalls} unary calls, stream runs ${rates.map((r) => Math.round(r)).join(', ')} msg/s`);
    const unaryConditions =
      `${reps.unaryCalls} sequential unary calls (${GRPC_PAYLOAD_BYTES} B payload) to a bare @grpc/grpc-js ` +
      `server in another process, insecure, loopback`;
    return [...percentileRows('floor.grpc_unary', samples, unaryConditions), streamRow(rates, reps)];
  } finally {
    client.close();
  }
}

function streamRow(rates: number[], reps: Repetitions): Row {
  return {
    id: 'floor.grpc_stream.rate',
    value: significant(median(rates)),
    unit: 'msg/s',
    target: null,
    ratio: null,
    met: null,
    conditions:
      `median of ${reps.streamRuns} runs (${rates.map((r) => Math.round(r)).join(', ')} msg/s); each run ` +
      `${reps.streamMessages} messages (${GRPC_PAYLOAD_BYTES} B payload) on one bidirectional stream to a bare ` +
      `@grpc/grpc-js server in another process, each answered on the stream, at most ${STREAM_WINDOW} unanswered; ` +
      `rate = answers / (last answer - first write)`,
  };
}

/** Runs `op` `count` times in sequence and returns each duration in ms. */
async function timeEach(count: number, op: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await op(i);
    samples.push(performance.now() - started);
  }
  return samples;
}

/** p50 and p99 rows, in ms, of `samples`. */
function percentileRows(prefix: string, samples: number[], conditions: string): Row[] {
  const s = spread(samples);
  const row = (id: string, value: number): Row => ({
    id: `${prefix}.${id}`,
    value: significant(value),
    unit: 'ms',
    target: null,
    ratio: null,
    met: null,
    conditions,
  });
  return [row('p50', s.p50), row('p99', s.p99)];
}
