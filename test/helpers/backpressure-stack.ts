/**
 * The backpressure pipeline of bench/lib/backpressure-worker.ts
 * (gen ─▶ relay ─▶ sink ─▶ a JetStream stream) for the backpressure tests:
 * local etcd and NATS, an in-process coordinator, and each task in a
 * worker process of its own, all stopped by `stop`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { JobInfo__Output } from '../../src/gen/ckpt/v1/JobInfo.js';
import { silentLogger } from '../../src/index.js';
import {
  connectNats,
  resolveConfig,
  runCoordinator,
  sinkMessageId,
  startLocalServers,
  type LocalServers,
  type RunningCoordinator,
} from '../../src/internal.js';
import { eventually } from './wait.js';

const WORKER_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'bench',
  'lib',
  'backpressure-worker.ts',
);

/** The pipeline's tasks, one worker process each. */
export const BACKPRESSURE_TASKS = ['gen', 'relay', 'sink'] as const;

/** How long a worker process has to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 5000;

/** What the pipeline's workers do. */
export interface BackpressureOptions {
  jobId: string;
  /** Names the test's NATS connection. */
  name: string;
  heartbeatTimeoutMs: number;
  /** Records a second the source makes at most, and the sink takes at most. */
  sourceRate: number;
  sinkRate: number;
  payloadBytes: number;
  /** The sink's stream and subject (default: the worker's, `BP_OUT` on `bp.out`). */
  output?: { stream: string; subject: string };
}

/** A running pipeline. */
export interface BackpressureStack {
  readonly servers: LocalServers;
  readonly coordinator: RunningCoordinator;
  /** The test's own NATS connection. */
  readonly nc: NatsConnection;
  readonly stateDir: string;
  /** The worker process of each task started. */
  readonly workers: Map<string, ChildProcess>;
  /** The job as the coordinator sees it now. */
  readonly job: () => JobInfo__Output;
  /** The job runs with all three tasks attached. */
  readonly running: () => boolean;
  /** Starts the worker process of `taskId` (again, after `killWorker`). */
  startWorker(taskId: string): void;
  /** SIGKILLs the worker process of `taskId` and resolves once it is gone. */
  killWorker(taskId: string): Promise<void>;
  /** Resolves once the job runs; rejects after `timeoutMs`. */
  untilRunning(timeoutMs?: number): Promise<void>;
  /**
   * Resolves once the sink's stream holds output of checkpoint
   * `checkpointId` or a later one (the sink publishes a checkpoint's
   * records once it completed, in completion order); rejects after
   * `timeoutMs`, naming the checkpoint.
   */
  untilOutputOf(checkpointId: number, timeoutMs?: number): Promise<void>;
  /** Stops the workers (SIGTERM, then SIGKILL), the connection, the coordinator and the servers. */
  stop(): Promise<void>;
}

/**
 * Starts servers, coordinator and a NATS connection (stopping what started
 * when one fails); the test submits the job and starts the workers.
 */
export async function startBackpressureStack(options: BackpressureOptions): Promise<BackpressureStack> {
  const parts: { servers?: LocalServers; coordinator?: RunningCoordinator; nc?: NatsConnection; stateDir?: string } =
    {};
  const workers = new Map<string, ChildProcess>();
  const stop = async (): Promise<void> => {
    await Promise.all([...workers.values()].map((child) => stopChild(child, 'SIGTERM')));
    await parts.nc?.close().catch(() => undefined);
    await parts.coordinator?.stop().catch(() => undefined);
    await parts.servers?.stop();
    if (parts.stateDir !== undefined) await rm(parts.stateDir, { recursive: true, force: true });
  };
  try {
    const servers = await startLocalServers();
    parts.servers = servers;
    const config = resolveConfig(
      {
        etcd: [servers.etcd.clientUrl],
        nats: [servers.nats.url],
        listen: '127.0.0.1:0',
        logLevel: 'warn',
        heartbeatIntervalMs: 250,
        heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      },
      {},
    );
    parts.coordinator = await runCoordinator(config, silentLogger());
    parts.nc = await connectNats([servers.nats.url], options.name);
    parts.stateDir = await mkdtemp(join(tmpdir(), `ckpt-${options.name}-`));
  } catch (err) {
    await stop();
    throw err;
  }
  const { servers, coordinator, nc, stateDir } = parts as Required<typeof parts>;
  const job = (): JobInfo__Output => coordinator.coordinator.getJob(options.jobId);
  const running = (): boolean => job().attempt === 'JOB_ATTEMPT_RUNNING' && job().attachedTasks === 3;
  const output = options.output ?? { stream: 'BP_OUT', subject: 'bp.out' };
  return {
    servers,
    coordinator,
    nc,
    stateDir,
    workers,
    job,
    running,
    startWorker(taskId) {
      const args = [
        '--import=tsx',
        WORKER_SCRIPT,
        ...['--coordinator', coordinator.address, '--nats', servers.nats.url, '--job', options.jobId],
        ...['--tasks', taskId, '--state-dir', stateDir],
        ...['--stream', output.stream, '--subject', output.subject],
        ...['--source-rate', String(options.sourceRate), '--sink-rate', String(options.sinkRate)],
        ...['--payload-bytes', String(options.payloadBytes)],
      ];
      workers.set(taskId, spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] }));
    },
    async killWorker(taskId) {
      const child = workers.get(taskId);
      if (child !== undefined) await stopChild(child, 'SIGKILL');
    },
    async untilRunning(timeoutMs = 60_000) {
      const what = `job ${options.jobId} running with its ${BACKPRESSURE_TASKS.length} tasks attached`;
      await eventually(running, { timeoutMs, pollMs: 50, what });
    },
    async untilOutputOf(checkpointId, timeoutMs = 30_000) {
      const jsm = await jetstreamManager(nc);
      const published = async (): Promise<boolean> => {
        const last = await jsm.streams.getMessage(output.stream, { last_by_subj: output.subject });
        return outputCheckpoint(last?.header.get('Nats-Msg-Id'), options.jobId) >= checkpointId;
      };
      const what = `the sink's output of checkpoint ${checkpointId} in stream ${output.stream}`;
      await eventually(published, { timeoutMs, pollMs: 100, what });
    },
    stop,
  };
}

/** The checkpoint of a sink's message id (`sinkMessageId`) of job `jobId`'s sink; 0 for anything else. */
function outputCheckpoint(msgId: string | undefined, jobId: string): number {
  const prefix = sinkMessageId(jobId, 'sink', 0, 0).slice(0, -'0/0'.length);
  if (msgId?.startsWith(prefix) !== true) return 0;
  const checkpointId = Number(msgId.slice(prefix.length).split('/', 1)[0]);
  return Number.isSafeInteger(checkpointId) ? checkpointId : 0;
}

/** Sends `signal` to a worker process that runs and resolves once it exited (SIGKILL after the grace). */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}
