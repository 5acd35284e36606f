/**
 * Backpressure: a sink that takes a tenth of what its source produces
 * slows the pipeline down to its pace through the credits of the data
 * plane's flow control, instead of failing as a slow consumer or queueing
 * without bound. Real etcd, NATS and coordinator; the three tasks of
 * bench/lib/backpressure-worker.ts (gen ─▶ relay ─▶ sink) in three worker processes,
 * whose resident memory is sampled while the job runs for a minute.
 */
import { readFile } from 'node:fs/promises';
import { setInterval } from 'node:timers/promises';
import test from 'ava';
import { readStream } from '../../examples/wordcount/verify.js';
import type { JobSpec } from '../../src/index.js';
import { BACKPRESSURE_TASKS, startBackpressureStack } from '../helpers/backpressure-stack.js';

const JOB_ID = 'bp';
const SOURCE_RATE = 2000;
const SINK_RATE = SOURCE_RATE / 10;
const PAYLOAD_BYTES = 2048;
const RUN_MS = 60_000;
/** How often each worker's resident memory is read. */
const RSS_SAMPLE_MS = 1000;
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

/** Resident memory of process `pid`, in bytes (Linux). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) * 1024;
}

test.serial(
  'a sink at a tenth of the source rate slows the source down: no recovery, bounded memory, exactly-once output',
  async (t) => {
    t.timeout(RUN_MS + 120_000);
    const stack = await startBackpressureStack({
      jobId: JOB_ID,
      name: 'backpressure',
      heartbeatTimeoutMs: 5000,
      sourceRate: SOURCE_RATE,
      sinkRate: SINK_RATE,
      payloadBytes: PAYLOAD_BYTES,
    });
    try {
      const { coordinator, nc, job } = stack;
      let completed = 0;
      coordinator.coordinator.events.subscribe(JOB_ID, (c) => {
        if (c.state === 'CHECKPOINT_STATE_COMPLETED') completed += 1;
      });
      // What the source sends: every record of the edge gen → relay.
      let generated = 0;
      const edge = nc.subscribe(`ckpt.${JOB_ID}.data.gen.relay`, {
        callback: () => {
          generated += 1;
        },
      });
      await coordinator.coordinator.submitJob(spec('aligned'));
      for (const taskId of BACKPRESSURE_TASKS) stack.startWorker(taskId);
      await stack.untilRunning();
      const began = Date.now();
      t.log(`job running; sampling worker memory for ${RUN_MS / 1000} s`);

      // Resident memory of each worker once a second; the first samples (5 s in) are the baseline. A worker
      // that exits fails the test at once.
      const rss = new Map<string, number[]>([...stack.workers.keys()].map((id) => [id, []]));
      const exited = new AbortController();
      for (const [id, child] of stack.workers) {
        if (child.exitCode !== null) throw new Error(`worker ${id} exited`);
        child.once('exit', () => exited.abort(new Error(`worker ${id} exited`)));
      }
      try {
        for await (const _ of setInterval(RSS_SAMPLE_MS, undefined, { signal: exited.signal })) {
          for (const [id, child] of stack.workers) rss.get(id)?.push(await rssOf(child.pid ?? 0));
          const seconds = Math.round((Date.now() - began) / 1000);
          if (seconds % 10 === 0) {
            const mib = [...rss].map(([id, s]) => `${id} ${((s.at(-1) ?? 0) / 2 ** 20).toFixed(0)} MiB`).join(', ');
            t.log(
              `${seconds} s: ${generated} records generated, ${completed} checkpoints, epoch ${job().epoch}; ${mib}`,
            );
          }
          if (Date.now() - began >= RUN_MS) break;
        }
      } catch (err) {
        throw exited.signal.aborted ? exited.signal.reason : err;
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
      await stack.stop();
    }
  },
);
