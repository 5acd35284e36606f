/**
 * The TypeScript SDK's conformance worker: runs the tasks `CKPT_TASKS`
 * describes with `src/sdk`, as the contract in test/conformance/README.md
 * says (environment, behaviours, reports, exit codes).
 *
 *   CKPT_COORDINATORS=127.0.0.1:7070 CKPT_NATS_URL=nats://127.0.0.1:4222 CKPT_JOB=j \
 *   CKPT_TASKS='{"src":{"kind":"source"},"sink":{"kind":"sink"}}' CKPT_STATE=file:///tmp/s \
 *   CKPT_REPORT_SUBJECT=reports node --import tsx test/conformance/ts-worker.ts
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import { createLogger, type Logger } from '../../src/log/index.js';
import {
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  CheckpointDeclinedError,
  createWorker,
  DEFAULT_MAX_ACK_REQUEST_BYTES,
  type AnyTask,
  type DataRecord,
  type SourceMessage,
  type SourcePosition,
  type SourceTask,
  type StateBackend,
  type Task,
  type TaskContext,
} from '../../src/sdk/index.js';
import { parseTasks, type Behaviour, type Report, type SourceBehaviour } from './behaviours.js';

/** The input name of a counting source's position. */
const COUNTER_INPUT = 'counter';

/** Exit code for a bad environment. */
const EXIT_USAGE = 2;

/** The values a report carries. */
interface Values {
  count: number;
  sum: number;
}

/** What every task of this process shares: where reports go. */
interface Reporter {
  subject: string;
  nc: NatsConnection | undefined;
  logger: Logger;
}

function publish(reporter: Reporter, report: Report): void {
  try {
    reporter.nc?.publish(reporter.subject, JSON.stringify(report));
  } catch (err) {
    reporter.logger.warn({ err, report }, 'report not published');
  }
}

/**
 * What every behaviour does the same way: reports of its snapshots once
 * committed, the restored values, declines and hangs.
 */
class TaskBase {
  readonly pending = new Map<number, Values>();
  restored: Values = { count: 0, sum: 0 };
  #declined = false;
  #firstEpoch: number | undefined;
  #handledInFirst = 0;

  constructor(
    readonly taskId: string,
    readonly behaviour: Behaviour,
    readonly reporter: Reporter,
  ) {}

  /** Throws for the checkpoint the behaviour declines (once). */
  declineCheck(checkpointId: number): void {
    if (this.behaviour.declineCheckpoint !== checkpointId || this.#declined) return;
    this.#declined = true;
    throw new CheckpointDeclinedError('declined by behaviour');
  }

  /** True when the call handling this record must hang forever. */
  hangs(ctx: TaskContext): boolean {
    this.#firstEpoch ??= ctx.epoch;
    if (ctx.epoch !== this.#firstEpoch || this.behaviour.hangAtRecord === undefined) return false;
    this.#handledInFirst += 1;
    if (this.#handledInFirst !== this.behaviour.hangAtRecord) return false;
    ctx.logger.warn({ record: this.#handledInFirst }, 'hanging by behaviour');
    return true;
  }

  /** What a processing call returns: a wait of `processDelayMs`, or nothing. */
  pace(): Promise<void> | undefined {
    const ms = this.behaviour.processDelayMs;
    return ms === undefined ? undefined : delay(ms);
  }

  snapshotTaken(checkpointId: number, values: Values): void {
    this.pending.set(checkpointId, values);
  }

  complete(checkpointId: number, ctx: TaskContext): void {
    const values = this.pending.get(checkpointId);
    for (const id of [...this.pending.keys()]) if (id <= checkpointId) this.pending.delete(id);
    if (values === undefined) return;
    const report: Report = {
      task: this.taskId,
      event: 'committed',
      epoch: ctx.epoch,
      checkpoint: checkpointId,
      ...values,
    };
    publish(this.reporter, report);
  }

  abort(checkpointId: number): void {
    this.pending.delete(checkpointId);
  }

  restoring(ctx: TaskContext, values: Values): void {
    this.reporter.nc ??= ctx.nats;
    this.pending.clear();
    this.restored = values;
  }
}

const FOREVER = new Promise<never>(() => {});
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function decodeJson(bytes: Uint8Array | undefined): unknown {
  return bytes === undefined || bytes.length === 0 ? undefined : JSON.parse(decoder.decode(bytes));
}

/** The counting source. */
function sourceTask(base: TaskBase, b: SourceBehaviour): SourceTask<number> {
  let handled = 0;
  return {
    async *read(positions: readonly SourcePosition[], ctx: TaskContext): AsyncIterable<SourceMessage<number>> {
      const from = positions.find((p) => p.input === COUNTER_INPUT)?.offset ?? 0;
      const startedAt = performance.now();
      let n = from;
      while (!ctx.signal.aborted && (b.limit === 0 || n < b.limit)) {
        if (b.rate > 0) {
          const ahead = startedAt + ((n - from) * 1000) / b.rate - performance.now();
          if (ahead > 5) await delay(ahead, undefined, { signal: ctx.signal }).catch(() => undefined);
          if (ctx.signal.aborted) return;
        }
        n += 1;
        yield { input: COUNTER_INPUT, offset: n, value: n };
      }
    },
    handle(message, ctx) {
      if (base.hangs(ctx)) return FOREVER;
      handled = message.offset;
      ctx.emit(String(message.value), { key: String(message.value % b.keys) });
      return undefined;
    },
    snapshot(ctx) {
      base.declineCheck(ctx.checkpointId);
      base.snapshotTaken(ctx.checkpointId, { count: handled, sum: handled });
      return encodeJson({ offset: handled });
    },
    restore(bytes, ctx) {
      const state = decodeJson(bytes) as { offset?: number } | undefined;
      handled = state?.offset ?? 0;
      base.restoring(ctx, { count: handled, sum: handled });
    },
    onCheckpointComplete: (id, ctx) => base.complete(id, ctx),
    onCheckpointAbort: (id) => base.abort(id),
  };
}

/** The keyed sum. */
function sumTask(base: TaskBase): Task {
  let sums = new Map<string, number>();
  const values = (): Values => ({ count: sums.size, sum: [...sums.values()].reduce((a, b) => a + b, 0) });
  return {
    process(record: DataRecord, ctx) {
      if (base.hangs(ctx)) return FOREVER;
      const n = Number(record.text());
      const key = record.key ?? '';
      sums.set(key, (sums.get(key) ?? 0) + n);
      ctx.emit(record.value, { key });
      return base.pace();
    },
    snapshot(ctx) {
      base.declineCheck(ctx.checkpointId);
      base.snapshotTaken(ctx.checkpointId, values());
      return encodeJson(Object.fromEntries(sums));
    },
    restore(bytes, ctx) {
      const state = (decodeJson(bytes) ?? {}) as Record<string, number>;
      sums = new Map(Object.entries(state));
      base.restoring(ctx, values());
    },
    onCheckpointComplete: (id, ctx) => base.complete(id, ctx),
    onCheckpointAbort: (id) => base.abort(id),
  };
}

/** The summing sink. */
function sinkTask(base: TaskBase): Task {
  let state: Values = { count: 0, sum: 0 };
  return {
    process(record, ctx) {
      if (base.hangs(ctx)) return FOREVER;
      state = { count: state.count + 1, sum: state.sum + Number(record.text()) };
      return base.pace();
    },
    snapshot(ctx) {
      base.declineCheck(ctx.checkpointId);
      base.snapshotTaken(ctx.checkpointId, state);
      return encodeJson(state);
    },
    restore(bytes, ctx) {
      const saved = decodeJson(bytes) as Values | undefined;
      state = saved ?? { count: 0, sum: 0 };
      base.restoring(ctx, state);
    },
    onCheckpointComplete: (id, ctx) => base.complete(id, ctx),
    onCheckpointAbort: (id) => base.abort(id),
  };
}

function taskOf(base: TaskBase): AnyTask {
  const b = base.behaviour;
  if (b.kind === 'source') return sourceTask(base, b);
  if (b.kind === 'sum') return sumTask(base);
  return sinkTask(base);
}

/** The environment of the contract, checked. */
interface Env {
  coordinators: string[];
  natsUrl: string;
  jobId: string;
  tasks: Map<string, Behaviour>;
  state: string;
  reportSubject: string;
  workerId: string | undefined;
  /** The coordinator's message limit, when it is below the SDK's default acknowledgement size. */
  maxMessageBytes: number | undefined;
}

function readEnv(env: NodeJS.ProcessEnv): Env {
  const need = (name: string): string => {
    const value = env[name];
    if (value === undefined || value.trim() === '') throw new Error(`${name} is not set`);
    return value.trim();
  };
  return {
    coordinators: need('CKPT_COORDINATORS')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean),
    natsUrl: need('CKPT_NATS_URL'),
    jobId: need('CKPT_JOB'),
    tasks: parseTasks(need('CKPT_TASKS')),
    state: need('CKPT_STATE'),
    reportSubject: need('CKPT_REPORT_SUBJECT'),
    workerId: env.CKPT_WORKER_ID === undefined || env.CKPT_WORKER_ID === '' ? undefined : env.CKPT_WORKER_ID,
    maxMessageBytes: positiveInteger(env, 'CKPT_MAX_MESSAGE_BYTES'),
  };
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${text}`);
  return value;
}

/** The backend `CKPT_STATE` names, and what closes what it opened. */
async function stateBackend(
  uri: string,
  natsUrl: string,
  logger: Logger,
): Promise<{ backend: StateBackend; close: () => Promise<void> }> {
  if (uri.startsWith('file://')) {
    const backend = await createLocalDirectoryBackend({ dir: fileURLToPath(uri), logger });
    return { backend, close: () => backend.close() };
  }
  if (uri.startsWith('nats-obj://')) {
    const bucket = uri.slice('nats-obj://'.length);
    const connection = await connectNats([natsUrl], 'ckpt-conformance-state', { logger });
    const backend = await createObjectStoreBackend({ connection, bucket, logger });
    return {
      backend,
      close: async () => {
        await backend.close();
        await connection.close();
      },
    };
  }
  throw new Error(`CKPT_STATE must be file:///abs/dir or nats-obj://<bucket>, got ${JSON.stringify(uri)}`);
}

async function main(): Promise<number> {
  let env: Env;
  try {
    env = readEnv(process.env);
  } catch (err) {
    process.stderr.write(`ts-worker: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  const logger = createLogger((process.env.CKPT_LOG_LEVEL ?? 'info') as 'info', 'ts-worker');
  const state = await stateBackend(env.state, env.natsUrl, logger);
  const reporter: Reporter = { subject: env.reportSubject, nc: undefined, logger };
  const bases = new Map([...env.tasks].map(([id, b]) => [id, new TaskBase(id, b, reporter)]));
  const worker = createWorker({
    coordinator: env.coordinators,
    nats: [env.natsUrl],
    jobId: env.jobId,
    ...(env.workerId === undefined ? {} : { workerId: env.workerId }),
    state: state.backend,
    logger,
    // A hung call is abandoned soon after a recovery, so that the restore does not wait long for it.
    abandonCallAfterMs: 2000,
    // Each acknowledgement message stays well below the coordinator's limit (R4).
    ...(env.maxMessageBytes === undefined
      ? {}
      : { maxAckRequestBytes: Math.min(DEFAULT_MAX_ACK_REQUEST_BYTES, Math.floor(env.maxMessageBytes / 2)) }),
  });
  for (const base of bases.values()) worker.addTask(base.taskId, taskOf(base));
  worker.on('restored', (event) => {
    for (const taskId of event.taskIds) {
      const base = bases.get(taskId);
      if (base === undefined) continue;
      const { epoch, checkpointId } = event;
      publish(reporter, { task: taskId, event: 'restored', epoch, checkpoint: checkpointId, ...base.restored });
    }
  });
  const stopped = new Promise<number>((resolve) => {
    let canceled = false;
    worker.once('canceled', () => {
      canceled = true;
    });
    worker.once('stopped', ({ error }) => resolve(error === undefined || canceled ? 0 : 1));
  });
  const stop = (): void => void worker.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await worker.start();
  } catch (err) {
    logger.error({ err }, 'the worker did not start');
    await state.close().catch(() => undefined);
    return 1;
  }
  const code = await stopped;
  await state.close().catch(() => undefined);
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ts-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
