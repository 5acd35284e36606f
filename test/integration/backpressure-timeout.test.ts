/**
 * Aligned checkpoints with an alignment timeout under backpressure: the
 * pipeline of bench/lib/backpressure-worker.ts (gen ─▶ relay ─▶ sink, the
 * sink at a tenth of the source rate, as in backpressure.test.ts) in
 * aligned mode with `aligned_checkpoint_timeout_ms`. Without the timeout a
 * checkpoint waits behind a window of records per edge at the sink's pace
 * (about 10 s here); with it each task takes the checkpoint unaligned once
 * it waited the timeout, storing the records queued ahead of the barriers
 * in flight. Then the relay's worker is killed: the job restores a
 * checkpoint whose pieces hold in-flight records (as their handles say),
 * processes them again, and the sink's output stays exactly-once. Real
 * etcd, NATS and coordinator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
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
const JOB_ID = 'bpt';
const SOURCE_RATE = 2000;
const SINK_RATE = SOURCE_RATE / 10;
const PAYLOAD_BYTES = 2048;
const ALIGNED_TIMEOUT_MS = 300;
/** How long the job runs under backpressure before the relay's worker is killed. */
const RUN_MS = 25_000;
/** Checkpoints triggered before this much time under backpressure are not judged (the queues fill). */
const WARMUP_MS = 8000;
/**
 * The longest median checkpoint duration accepted. Without the timeout a
 * barrier waits behind a window (1024 records) per edge at 200 records a
 * second: about 5 s per edge, 10 s for the two; with it, about the timeout
 * per task plus the commit.
 */
const MAX_MEDIAN_MS = 3000;

const spec: JobSpec = {
  jobId: JOB_ID,
  tasks: [{ taskId: 'gen' }, { taskId: 'relay', inputs: ['gen'] }, { taskId: 'sink', inputs: ['relay'] }],
  policy: {
    intervalMs: 1000,
    timeoutMs: 60_000,
    retained: 3,
    tolerableFailures: -1,
    mode: 'CHECKPOINT_MODE_ALIGNED',
    alignedCheckpointTimeoutMs: ALIGNED_TIMEOUT_MS,
  },
};

interface Stack {
  servers?: LocalServers;
  coordinator?: RunningCoordinator;
  nc?: NatsConnection;
  stateDir?: string;
  workers: Map<string, ChildProcess>;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function stop(stack: Stack): Promise<void> {
  await Promise.all([...stack.workers.values()].map((child) => stopChild(child, 'SIGTERM')));
  await stack.nc?.close().catch(() => undefined);
  await stack.coordinator?.stop().catch(() => undefined);
  await stack.servers?.stop();
  if (stack.stateDir !== undefined) await rm(stack.stateDir, { recursive: true, force: true });
}

async function until(what: string, timeoutMs: number, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial(
  'aligned checkpoints with an alignment timeout complete quickly under backpressure and restore their in-flight records exactly once',
  async (t) => {
    t.timeout(RUN_MS + 180_000);
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
          heartbeatTimeoutMs: 3000,
        },
        {},
      );
      const coordinator = await runCoordinator(config, silentLogger());
      stack.coordinator = coordinator;
      const completed: { id: number; triggeredAtMs: number; ms: number; epoch: number }[] = [];
      const job = (): ReturnType<typeof coordinator.coordinator.getJob> => coordinator.coordinator.getJob(JOB_ID);
      coordinator.coordinator.events.subscribe(JOB_ID, (c) => {
        if (c.state !== 'CHECKPOINT_STATE_COMPLETED') return;
        const ms = c.finishedAtMs - c.triggeredAtMs;
        completed.push({ id: c.checkpointId, triggeredAtMs: c.triggeredAtMs, ms, epoch: job().epoch });
      });
      const recoveries: number[] = [];
      coordinator.coordinator.events.subscribeRecoveries((r) => {
        if (r.jobId === JOB_ID) recoveries.push(r.checkpointId);
      });
      const nc = await connectNats([stack.servers.nats.url], 'backpressure-timeout-test');
      stack.nc = nc;
      await coordinator.coordinator.submitJob(spec);
      stack.stateDir = await mkdtemp(join(tmpdir(), 'ckpt-backpressure-timeout-'));
      const startWorker = (taskId: string): void => {
        const args = [
          '--import=tsx',
          WORKER_SCRIPT,
          ...['--coordinator', coordinator.address, '--nats', stack.servers?.nats.url ?? '', '--job', JOB_ID],
          ...['--tasks', taskId, '--state-dir', stack.stateDir ?? ''],
          ...['--stream', 'BPT_OUT', '--subject', 'bpt.out'],
          ...['--source-rate', String(SOURCE_RATE), '--sink-rate', String(SINK_RATE)],
          ...['--payload-bytes', String(PAYLOAD_BYTES)],
        ];
        stack.workers.set(taskId, spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
      };
      for (const taskId of ['gen', 'relay', 'sink']) startWorker(taskId);
      const running = (): boolean => job().attempt === 'JOB_ATTEMPT_RUNNING' && job().attachedTasks === 3;
      await until('the job runs', 60_000, running);
      const began = Date.now();
      t.log(`job running with a ${ALIGNED_TIMEOUT_MS} ms alignment timeout; ${RUN_MS / 1000} s under backpressure`);
      await new Promise((r) => setTimeout(r, RUN_MS));

      const judged = completed.filter((c) => c.epoch === 1 && c.triggeredAtMs >= began + WARMUP_MS);
      const sorted = judged.map((c) => c.ms).sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? Infinity;
      t.log(`${judged.length} checkpoints after the warm-up: median ${median} ms, longest ${sorted.at(-1)} ms`);
      t.is(job().epoch, 1, 'no recovery under backpressure');
      t.true(judged.length >= 5, `checkpoints complete under backpressure (${judged.length})`);
      t.true(median <= MAX_MEDIAN_MS, `the median checkpoint took ${median} ms, at most ${MAX_MEDIAN_MS} ms`);

      // The relay's worker dies: the job restores its latest checkpoint, in-flight records included.
      const killed = stack.workers.get('relay');
      if (killed !== undefined) await stopChild(killed, 'SIGKILL');
      startWorker('relay');
      await until('the job recovers', 60_000, () => recoveries.length > 0 && job().epoch >= 2 && running());
      const restored = recoveries[0] ?? 0;
      t.true(restored > 0, 'the job restored a checkpoint');
      const details = await coordinator.coordinator.getCheckpoint(JOB_ID, restored);
      const holding = (details.manifest?.tasks ?? [])
        .filter((s) => s.state?.inFlightRecords === true)
        .map((s) => `${s.taskId} (${s.metrics?.inFlightBytes ?? 0} bytes)`);
      t.log(`restored checkpoint ${restored}; tasks holding in-flight records: ${holding.join(', ') || 'none'}`);
      t.true(holding.length > 0, `checkpoint ${restored} stored in-flight records and its manifest says so`);
      const afterRecovery = completed.length;
      await until('checkpoints complete after the recovery', 60_000, () => completed.length >= afterRecovery + 3);
      await new Promise((r) => setTimeout(r, 3000));

      // Exactly once: the sink's visible output is the records 1..n, each once, in order.
      const output = (await readStream(nc, 'BPT_OUT')).map(Number);
      t.log(`${output.length} records visible, epoch ${job().epoch}, checkpoint ${job().latestCheckpointId}`);
      t.is(new Set(output).size, output.length, 'no record is visible twice');
      t.true(output.length >= SINK_RATE * 10, `the sink's output is visible (${output.length} records)`);
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
