/**
 * `ckpt demo`: starts a local etcd and NATS, a coordinator and three
 * simulated workers running a seven-task job, lets periodic checkpoints
 * commit, and prints what was committed to etcd. Leaves nothing running.
 */
import type { Command } from 'commander';
import { createQueryClient } from '../client/index.js';
import { resolveConfig } from '../config/index.js';
import { startLocalServers, type LocalServers } from '../dev/index.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import { createLogger } from '../log/index.js';
import { runCoordinator, type RunningCoordinator } from '../server/run.js';
import { startSimulatedWorker, type SimulatedWorker } from '../sim/index.js';
import { bytes, checkpointsTable } from './format.js';

/** The demo job: sentences → split → count → sink, two of each but the sink. */
export const DEMO_SPEC: JobSpec = {
  jobId: 'wordcount',
  tasks: [
    { taskId: 'source-0' },
    { taskId: 'source-1' },
    { taskId: 'split-0', inputs: ['source-0', 'source-1'] },
    { taskId: 'split-1', inputs: ['source-0', 'source-1'] },
    { taskId: 'count-0', inputs: ['split-0', 'split-1'] },
    { taskId: 'count-1', inputs: ['split-0', 'split-1'] },
    { taskId: 'sink', inputs: ['count-0', 'count-1'] },
  ],
  policy: { intervalMs: 500, timeoutMs: 10_000, retained: 3, maxConcurrent: 1 },
};

const WORKERS: string[][] = [['source-0', 'split-0', 'count-0'], ['source-1', 'split-1', 'count-1'], ['sink']];

/** Adds the `demo` command. */
export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a local coordinator with simulated workers through several checkpoints')
    .option('--checkpoints <n>', 'checkpoints to commit before stopping', '6')
    .action(async (o: { checkpoints: string }) => {
      process.exitCode = await runDemo(Number(o.checkpoints));
    });
}

async function runDemo(target: number): Promise<number> {
  let servers: LocalServers | undefined;
  let coordinator: RunningCoordinator | undefined;
  const workers: SimulatedWorker[] = [];
  const logger = createLogger('warn');
  try {
    console.log('demo: starting etcd and NATS on free loopback ports');
    servers = await startLocalServers();
    console.log(`demo: etcd ${servers.etcd.clientUrl}, NATS ${servers.nats.url}`);
    const config = resolveConfig(
      {
        etcd: [servers.etcd.clientUrl],
        nats: [servers.nats.url],
        listen: '127.0.0.1:0',
        logLevel: 'warn',
        heartbeatIntervalMs: 250,
        heartbeatTimeoutMs: 2500,
      },
      {},
    );
    coordinator = await runCoordinator(config, logger);
    console.log(`demo: coordinator listening on ${coordinator.address}`);
    await coordinator.coordinator.submitJob(DEMO_SPEC);
    console.log(
      `demo: job ${DEMO_SPEC.jobId} submitted: ${DEMO_SPEC.tasks?.length ?? 0} tasks, a checkpoint every ${Number(DEMO_SPEC.policy?.intervalMs)} ms`,
    );
    const committed = watchCommits(coordinator, target);
    for (const [i, taskIds] of WORKERS.entries()) {
      workers.push(
        await startSimulatedWorker({
          coordinator: coordinator.address,
          nats: [servers.nats.url],
          jobId: 'wordcount',
          workerId: `worker-${i}`,
          taskIds,
          spec: DEMO_SPEC,
          stateBytes: 4096 * (i + 1),
          logger,
        }),
      );
      console.log(`demo: worker-${i} attached with ${taskIds.join(', ')}`);
    }
    await committed;
    await coordinator.coordinator.cancelJob('wordcount');
    await printCommitted(coordinator.address);
    console.log(`demo: OK (${target} checkpoints committed)`);
    return 0;
  } catch (err) {
    console.error(`demo: FAIL: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await Promise.allSettled(workers.map((w) => w.close()));
    await coordinator?.stop();
    await servers?.stop();
  }
}

function watchCommits(running: RunningCoordinator, target: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let count = 0;
    const timer = setTimeout(() => reject(new Error(`fewer than ${target} checkpoints committed within 60 s`)), 60_000);
    const stop = running.coordinator.events.subscribe('wordcount', (c) => {
      if (c.state === 'CHECKPOINT_STATE_ABORTED')
        console.log(`demo: checkpoint ${c.checkpointId} aborted: ${c.abortReason} ${c.abortMessage}`);
      if (c.state !== 'CHECKPOINT_STATE_COMPLETED') return;
      count += 1;
      console.log(
        `demo: checkpoint ${c.checkpointId} committed in ${c.finishedAtMs - c.triggeredAtMs} ms: ${c.acknowledgedTasks} tasks, state ${bytes(c.stateSizeBytes)}, manifest ${bytes(c.manifestBytes)}`,
      );
      if (count >= target) {
        clearTimeout(timer);
        stop();
        resolve();
      }
    });
  });
}

async function printCommitted(address: string): Promise<void> {
  const query = createQueryClient(address);
  try {
    const list = await query.listCheckpoints({ jobId: 'wordcount', pageSize: 20 });
    console.log('\ncheckpoints of job wordcount (etcd retains the newest 3):');
    console.log(checkpointsTable(list.checkpoints));
    const latest = list.checkpoints.find((c) => c.state === 'CHECKPOINT_STATE_COMPLETED');
    if (latest === undefined) throw new Error('no completed checkpoint listed');
    const { manifest } = await query.getCheckpoint({ jobId: 'wordcount', checkpointId: latest.checkpointId });
    console.log(`\nmanifest of checkpoint ${latest.checkpointId}, as committed to etcd:`);
    for (const t of manifest?.tasks ?? []) {
      const positions = t.positions.map((p) => `${p.input}@${p.offset}`).join(' ');
      console.log(
        `  ${t.taskId.padEnd(9)} ${(t.state?.uri ?? '').padEnd(30)} ${bytes(t.state?.sizeBytes ?? 0).padStart(9)}  ${positions}`,
      );
    }
    console.log('');
  } finally {
    query.close();
  }
}
