/**
 * A worker process of the backpressure pipeline, which the backpressure
 * scenario (bench/backpressure.ts) and test
 * (test/integration/backpressure.test.ts) run: some of the tasks of a
 * three-task pipeline until SIGTERM.
 *
 *   gen ─▶ relay ─▶ sink ─▶ JetStream stream `--stream` (subject `--subject`)
 *
 * - gen: a source of numbered records (1, 2, 3, …, each padded to
 *   `--payload-bytes`) at most `--source-rate` records a second; its
 *   position is the last number handled, so a restore resumes after it.
 * - relay: forwards each record.
 * - sink: the exactly-once JetStream sink, taking at most `--sink-rate`
 *   records a second; it publishes each record's number.
 *
 *   node --import tsx bench/lib/backpressure-worker.ts --coordinator ADDR --nats URL \
 *     --job bp --tasks gen --state-dir DIR [--stream BP_OUT] [--subject bp.out] [--window N]
 *     [--source-rate N] [--sink-rate N] [--payload-bytes N]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  createLocalDirectoryBackend,
  createLogger,
  createWorker,
  jetStreamSink,
  type AnyTask,
  type SourceMessage,
  type SourceTask,
  type Task,
} from '../../src/index.js';

/** How fast the tasks go, how big the records are, and where the sink writes. */
interface Pace {
  sourceRate: number;
  sinkRate: number;
  payloadBytes: number;
  stream: string;
  subject: string;
}

function genTask(pace: Pace): SourceTask<number> {
  const padding = 'x'.repeat(Math.max(0, pace.payloadBytes - 12));
  return {
    async *read(positions, ctx): AsyncIterable<SourceMessage<number>> {
      const first = (positions.find((p) => p.input === 'gen')?.offset ?? 0) + 1;
      const begin = performance.now();
      for (let n = first; !ctx.signal.aborted; n += 1) {
        yield { input: 'gen', offset: n, value: n };
        if ((n - first) % 20 === 19) {
          const due = begin + ((n - first + 1) * 1000) / pace.sourceRate;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
        }
      }
    },
    handle(message, ctx): void {
      ctx.emit(`${message.value} ${padding}`);
    },
  };
}

function relayTask(): Task {
  return {
    process(record, ctx): void {
      ctx.emit(record.value);
    },
  };
}

function sinkTask(pace: Pace): Task {
  const inner = jetStreamSink({
    stream: pace.stream,
    subject: pace.subject,
    createStream: true,
    map: (record) => record.text().split(' ', 1)[0] ?? '',
  });
  const intervalMs = 1000 / pace.sinkRate;
  let due = 0;
  return {
    ...inner,
    process(record, ctx): void | Promise<void> {
      const now = performance.now();
      // Paced: the records of a second take a second, whatever arrives.
      due = Math.max(due, now - intervalMs) + intervalMs;
      void inner.process(record, ctx);
      const wait = due - now;
      return wait >= 1 ? sleep(wait).then(() => undefined) : undefined;
    },
  };
}

function taskFor(taskId: string, pace: Pace): AnyTask {
  if (taskId === 'gen') return genTask(pace);
  if (taskId === 'relay') return relayTask();
  if (taskId === 'sink') return sinkTask(pace);
  throw new Error(`the backpressure pipeline has no task ${taskId}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      coordinator: { type: 'string' },
      nats: { type: 'string' },
      job: { type: 'string', default: 'bp' },
      tasks: { type: 'string' },
      'state-dir': { type: 'string' },
      window: { type: 'string' },
      'source-rate': { type: 'string', default: '2000' },
      'sink-rate': { type: 'string', default: '200' },
      'payload-bytes': { type: 'string', default: '2048' },
      stream: { type: 'string', default: 'BP_OUT' },
      subject: { type: 'string', default: 'bp.out' },
    },
  });
  if (!values.coordinator || !values.nats || !values.tasks || !values['state-dir']) {
    throw new Error('usage: backpressure-worker.ts --coordinator ADDR --nats URL --tasks T1,T2 --state-dir DIR');
  }
  const pace: Pace = {
    sourceRate: Number(values['source-rate']),
    sinkRate: Number(values['sink-rate']),
    payloadBytes: Number(values['payload-bytes']),
    stream: values.stream,
    subject: values.subject,
  };
  for (const [name, value] of Object.entries(pace)) {
    if (typeof value === 'number' && !(value > 0)) throw new Error(`--${name}: ${value} is not a positive number`);
  }
  const logger = createLogger('warn', 'backpressure-worker');
  const state = await createLocalDirectoryBackend({ dir: values['state-dir'], logger });
  const worker = createWorker({
    coordinator: values.coordinator,
    nats: values.nats.split(','),
    jobId: values.job,
    state,
    logger,
    ...(values.window === undefined ? {} : { flowControlWindow: Number(values.window) }),
  });
  for (const taskId of values.tasks.split(',')) worker.addTask(taskId, taskFor(taskId, pace));
  await worker.start();
  const stop = (): void => {
    worker.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`backpressure worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
