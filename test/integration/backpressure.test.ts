/**
 * Backpressure: a sink that takes a tenth of what its source produces
 * slows the pipeline down to its pace through the credits of the data
 * plane's flow control, instead of failing as a slow consumer or queueing
 * without bound. Real etcd, NATS and coordinator; the three tasks of
 * bench/lib/backpressure-worker.ts (gen ─▶ relay ─▶ sink) in three worker processes,
 * whose resident memory is sampled while the job runs for a minute.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { NatsConnection } from '@nats-io/nats-core';
import { readStream } from '../../examples/wordcount/verify.js';
import { silentLogger, type JobSpec } from '../../src/index.js';
import {
  connectNats,
  resolveConfig,
  runCoordinator,
  startLocalServers,
  type LocalServers,
  type RunningCoordinator,
} from '../../src/internal.js';

const WORKER_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'bench',
  'lib',
  'backpressure-worker.ts',
);
const JOB_ID = 'bp';
const SOURCE_RATE = 2000;
const SINK_RATE = SOURCE_RATE / 10;
const PAYLOAD_BYTES = 2048;
const RUN_MS = 60_000;
/**
 * The most a worker's resident memory may grow after its first samples.
 * Without flow control the sink's worker queues what the source makes and
 * the sink does not take: about 1800 records of 2 KiB a second, over
 * 200 MiB in the minute, far above this.
 */
const MAX_RSS_GROWTH_BYTES = 64 * 1024 * 1024;

function spec(mode: 'aligned' | 'unaligned'): JobSpec {
  return {
    jobId: JOB_ID,
    tasks: [{ taskId: 'gen' }, { taskId: 'relay', inputs: ['gen'] }, { taskId: 'sink', inputs: ['relay'] }],
    policy: {
      intervalMs: 1000,
      timeoutMs: 60_000,
      retained: 3,
      tolerableFailures: -1,
      mode: mode === 'aligned' ? 'CHECKPOINT_MODE_ALIGNED' : 'CHECKPOINT_MODE_UNALIGNED',
    },
  };
}

/** Everything a run started. */
interface Stack {
  servers?: LocalServers;
  coordinator?: RunningCoordinator;
  nc?: NatsConnection;
  stateDir?: string;
  workers: Map<string, ChildProcess>;
}

/** Resident memory of process `pid`, in bytes (Linux). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

async function stop(stack: Stack): Promise<void> {
  for (const child of stack.workers.values()) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(
    [...stack.workers.values()].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
  await stack.nc?.close().catch(() => undefined);
  await stack.coordinator?.stop().catch(() => undefined);
  await stack.servers?.stop();
  if (stack.stateDir !== undefined) await rm(stack.stateDir, { recursive: true, force: true });
}

test.serial(
  'a sink at a tenth of the source rate slows the source down: no recovery, bounded memory, exactly-once output',
  async (t) => {
    t.timeout(RUN_MS + 120_000);
    const stack: Stack = { workers: new Map() };
    try {
      stack.servers = await startLocalServers();
      const config = resolveConfig(
        {
          etcd: [stack.servers.etcd.clientUrl],
          nats: [stack.servers.nats.url],
          listen: '127.0.0.1:0',
          logLevel: 'warn',
          heartbeatIntervalMs: 250,
          heartbeatTimeoutMs: 5000,
        },
        {},
      );
      const coordinator = await runCoordinator(config, silentLogger());
      stack.coordinator = coordinator;
      let completed = 0;
      coordinator.coordinator.events.subscribe(JOB_ID, (c) => {
        if (c.state === 'CHECKPOINT_STATE_COMPLETED') completed += 1;
      });
      const nc = await connectNats([stack.servers.nats.url], 'backpressure-test');
      stack.nc = nc;
      // What the source sends: every record of the edge gen → relay.
      let generated = 0;
      const edge = nc.subscribe(`ckpt.${JOB_ID}.data.gen.relay`, {
        callback: () => {
          generated += 1;
        },
      });
      await coordinator.coordinator.submitJob(spec('aligned'));
      stack.stateDir = await mkdtemp(join(tmpdir(), 'ckpt-backpressure-'));
      for (const taskId of ['gen', 'relay', 'sink']) {
        const args = [
          '--import=tsx',
          WORKER_SCRIPT,
          ...['--coordinator', coordinator.address, '--nats', stack.servers.nats.url, '--job', JOB_ID],
          ...['--tasks', taskId, '--state-dir', stack.stateDir],
          ...['--source-rate', String(SOURCE_RATE), '--sink-rate', String(SINK_RATE)],
          ...['--payload-bytes', String(PAYLOAD_BYTES)],
        ];
        stack.workers.set(taskId, spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
      }
      const job = (): ReturnType<typeof coordinator.coordinator.getJob> => coordinator.coordinator.getJob(JOB_ID);
      const deadline = Date.now() + 60_000;
      while (!(job().attempt === 'JOB_ATTEMPT_RUNNING' && job().attachedTasks === 3)) {
        if (Date.now() > deadline) throw new Error(`the job did not run within 60 s (${job().attempt})`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const began = Date.now();
      t.log(`job running; sampling worker memory for ${RUN_MS / 1000} s`);

      // Resident memory of each worker once a second; the first samples (5 s in) are the baseline.
      const rss = new Map<string, number[]>([...stack.workers.keys()].map((id) => [id, []]));
      while (Date.now() - began < RUN_MS) {
        await new Promise((r) => setTimeout(r, 1000));
        for (const [id, child] of stack.workers) {
          if (child.exitCode !== null || child.pid === undefined) throw new Error(`worker ${id} exited`);
          rss.get(id)?.push(await rssOf(child.pid));
        }
        const seconds = Math.round((Date.now() - began) / 1000);
        if (seconds % 10 === 0) {
          const mib = [...rss].map(([id, s]) => `${id} ${((s.at(-1) ?? 0) / 2 ** 20).toFixed(0)} MiB`).join(', ');
          t.log(`${seconds} s: ${generated} records generated, ${completed} checkpoints, epoch ${job().epoch}; ${mib}`);
        }
      }
      edge.unsubscribe();
      const epoch = job().epoch;
      const lastCheckpoint = job().latestCheckpointId;

      t.is(epoch, 1, 'no recovery: the job ran in its first epoch throughout');
      t.true(completed >= 3, `checkpoints complete under backpressure (${completed})`);
      const budget = (RUN_MS / 1000) * SOURCE_RATE;
      t.true(generated < budget / 2, `the source was slowed down: ${generated} records of the ${budget} it would make`);
      for (const [id, samples] of rss) {
        const base = Math.min(...samples.slice(3, 6));
        const peak = Math.max(...samples);
        t.log(
          `${id}: resident memory ${(base / 2 ** 20).toFixed(0)} MiB after 5 s, at most ${(peak / 2 ** 20).toFixed(0)} MiB`,
        );
        t.true(peak - base < MAX_RSS_GROWTH_BYTES, `worker ${id} grew by ${((peak - base) / 2 ** 20).toFixed(0)} MiB`);
      }

      // Exactly once: the sink's visible output is the records 1..n, each once, up to the last checkpoint.
      const output = (await readStream(nc, 'BP_OUT')).map(Number);
      const distinct = new Set(output);
      t.is(distinct.size, output.length, 'no record is visible twice');
      t.true(
        output.length >= SINK_RATE * 10,
        `the sink's output is visible (${output.length} records, checkpoint ${lastCheckpoint})`,
      );
      t.deepEqual(
        output.filter((n, i) => n !== i + 1).slice(0, 5),
        [],
        'the output is every record from the first on, in order, none lost',
      );
    } finally {
      await stop(stack);
    }
  },
);
