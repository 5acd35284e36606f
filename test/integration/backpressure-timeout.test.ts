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
import test from 'ava';
import { readStream } from '../../examples/wordcount/verify.js';
import type { JobSpec } from '../../src/index.js';
import { BACKPRESSURE_TASKS, startBackpressureStack } from '../helpers/backpressure-stack.js';
import { eventually } from '../helpers/wait.js';

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

test.serial(
  'aligned checkpoints with an alignment timeout complete quickly under backpressure and restore their in-flight records exactly once',
  async (t) => {
    t.timeout(RUN_MS + 180_000);
    const stack = await startBackpressureStack({
      jobId: JOB_ID,
      name: 'backpressure-timeout',
      heartbeatTimeoutMs: 3000,
      sourceRate: SOURCE_RATE,
      sinkRate: SINK_RATE,
      payloadBytes: PAYLOAD_BYTES,
      output: { stream: 'BPT_OUT', subject: 'bpt.out' },
    });
    try {
      const { coordinator, nc, job } = stack;
      const completed: { id: number; triggeredAtMs: number; ms: number; epoch: number }[] = [];
      coordinator.coordinator.events.subscribe(JOB_ID, (c) => {
        if (c.state !== 'CHECKPOINT_STATE_COMPLETED') return;
        const ms = c.finishedAtMs - c.triggeredAtMs;
        completed.push({ id: c.checkpointId, triggeredAtMs: c.triggeredAtMs, ms, epoch: job().epoch });
      });
      const recoveries: number[] = [];
      coordinator.coordinator.events.subscribeRecoveries((r) => {
        if (r.jobId === JOB_ID) recoveries.push(r.checkpointId);
      });
      await coordinator.coordinator.submitJob(spec);
      for (const taskId of BACKPRESSURE_TASKS) stack.startWorker(taskId);
      await stack.untilRunning();
      const began = Date.now();
      t.log(`job running with a ${ALIGNED_TIMEOUT_MS} ms alignment timeout; ${RUN_MS / 1000} s under backpressure`);
      // The job runs under backpressure for a while: the checkpoints of that time are measured.
      await new Promise((r) => setTimeout(r, RUN_MS));

      const judged = completed.filter((c) => c.epoch === 1 && c.triggeredAtMs >= began + WARMUP_MS);
      const sorted = judged.map((c) => c.ms).sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] ?? Infinity;
      t.log(`${judged.length} checkpoints after the warm-up: median ${median} ms, longest ${sorted.at(-1)} ms`);
      t.is(job().epoch, 1, 'no recovery under backpressure');
      t.true(judged.length >= 5, `checkpoints complete under backpressure (${judged.length})`);
      t.true(median <= MAX_MEDIAN_MS, `the median checkpoint took ${median} ms, at most ${MAX_MEDIAN_MS} ms`);

      // The relay's worker dies: the job restores its latest checkpoint, in-flight records included.
      await stack.killWorker('relay');
      stack.startWorker('relay');
      const recovered = (): boolean => recoveries.length > 0 && job().epoch >= 2 && stack.running();
      await eventually(recovered, { timeoutMs: 60_000, pollMs: 50, what: 'the job recovering' });
      const restored = recoveries[0] ?? 0;
      t.true(restored > 0, 'the job restored a checkpoint');
      const details = await coordinator.coordinator.getCheckpoint(JOB_ID, restored);
      const holding = (details.manifest?.tasks ?? [])
        .filter((s) => s.state?.inFlightRecords === true)
        .map((s) => `${s.taskId} (${s.metrics?.inFlightBytes ?? 0} bytes)`);
      t.log(`restored checkpoint ${restored}; tasks holding in-flight records: ${holding.join(', ') || 'none'}`);
      t.true(holding.length > 0, `checkpoint ${restored} stored in-flight records and its manifest says so`);
      const afterRecovery = completed.length;
      const three = (): boolean => completed.length >= afterRecovery + 3;
      await eventually(three, {
        timeoutMs: 60_000,
        pollMs: 50,
        what: 'three checkpoints completing after the recovery',
      });
      // The sink publishes a checkpoint's records once it completed: wait for those of the last one.
      await stack.untilOutputOf(completed.at(-1)?.id ?? 0);

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
      await stack.stop();
    }
  },
);
