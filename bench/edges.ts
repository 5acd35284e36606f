/**
 * Scenario 7, the cost of checking what comes in: validating a job spec of
 * 100,000 tasks with a wide fan-out (one source read by every other task),
 * an SDK worker wiring the same job, and a heartbeat reporting 50,000
 * tasks, in a coordinator against this run's etcd and NATS. Checks must be linear in their input: a spec four
 * times as large may cost at most six times as much (linear is four,
 * quadratic sixteen), and the absolute figures are held to well under a
 * second. The floor is what any check must do with the same input: copy
 * its entries and index them by id.
 */
import { createCoordinatorClient } from '../src/client/index.js';
import { resolveConfig } from '../src/config/index.js';
import { DEFAULT_LIMITS } from '../src/core/limits.js';
import { validateJobSpec } from '../src/core/validate.js';
import type { AttachResponse__Output } from '../src/gen/ckpt/v1/AttachResponse.js';
import type { JobSpec } from '../src/gen/ckpt/v1/JobSpec.js';
import type { TaskHealth } from '../src/gen/ckpt/v1/TaskHealth.js';
import { silentLogger } from '../src/log/index.js';
import { jobGraph, Router, type AnyTask } from '../src/sdk/index.js';
import { checkWiring } from '../src/sdk/wiring.js';
import { runCoordinator } from '../src/server/run.js';
import { median, significant } from './lib/percentiles.js';
import type { Row, Scenario, ScenarioContext } from './lib/row.js';

/** Largest spec validated, and the heartbeat's task count. */
const SPEC_TASKS = 100_000;
const HEARTBEAT_TASKS = 50_000;
/** A check of four times the input may cost at most this many times as much. */
const MAX_SCALING = 6;
/** A check may cost at most this many times its floor. */
const MAX_VS_FLOOR = 5;
/** The bound of a spec check, in ms: "well under a second". */
const SPEC_TARGET_MS = 1000;

/** One source read by `n - 1` readers. */
function fanOutSpec(jobId: string, n: number): JobSpec {
  const readers = Array.from({ length: n - 1 }, (_, i) => ({ taskId: `r${i}`, inputs: ['src'] }));
  return { jobId, tasks: [{ taskId: 'src' }, ...readers] };
}

/** Median wall time of `run` over `rounds`, in ms, after one warm-up. */
function timed(rounds: number, run: () => unknown): number {
  run();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const began = performance.now();
    run();
    samples.push(performance.now() - began);
  }
  return median(samples);
}

/** The floor of checking `items`: a shallow copy of each, and an index of their ids. */
function floorOf(items: ReadonlyArray<{ taskId?: string; inputs?: readonly string[] }>): void {
  const index = new Map<string, { taskId?: string; inputs: string[] }>();
  for (const item of items) index.set(item.taskId ?? '', { ...item, inputs: [...(item.inputs ?? [])] });
}

function row(id: string, value: number, unit: string, extra: Partial<Row> & { conditions: string }): Row {
  return { id, value: significant(value), unit, target: null, ratio: null, met: null, ...extra };
}

function specRows(rounds: number): Row[] {
  const small = fanOutSpec('small', SPEC_TASKS / 4);
  const large = fanOutSpec('large', SPEC_TASKS);
  const smallMs = timed(rounds, () => validateJobSpec(small, DEFAULT_LIMITS));
  const largeMs = timed(rounds, () => validateJobSpec(large, DEFAULT_LIMITS));
  const floorMs = timed(rounds, () => floorOf(large.tasks ?? []));
  const conditions = `validateJobSpec of one source read by every other task, median of ${rounds} rounds after a warm-up, in the benchmark process`;
  return [
    row(`edges.floor.spec.n${SPEC_TASKS}`, floorMs, 'ms', {
      conditions: `a shallow copy of each of the ${SPEC_TASKS} task entries, in a Map by id`,
    }),
    row(`edges.validate_spec.n${SPEC_TASKS}`, largeMs, 'ms', {
      target: SPEC_TARGET_MS,
      ratio: significant(largeMs / floorMs),
      met: largeMs <= SPEC_TARGET_MS,
      conditions: `${conditions}; ratio to the floor`,
    }),
    row('edges.validate_spec.vs_floor', largeMs / floorMs, 'ratio', {
      target: MAX_VS_FLOOR,
      met: largeMs / floorMs <= MAX_VS_FLOOR,
      conditions: `validate_spec.n${SPEC_TASKS} ÷ floor.spec.n${SPEC_TASKS}, both in this run`,
    }),
    row('edges.validate_spec.scaling', largeMs / smallMs, 'ratio', {
      target: MAX_SCALING,
      met: largeMs / smallMs <= MAX_SCALING,
      conditions: `time of ${SPEC_TASKS} tasks ÷ time of ${SPEC_TASKS / 4} (linear: 4, quadratic: 16)`,
    }),
  ];
}

/** What a worker does with a job's spec before it runs: graph, wiring of its tasks, routing of a source. */
function wireWorker(spec: JobSpec): void {
  const graph = jobGraph(validateJobSpec(spec, DEFAULT_LIMITS));
  const tasks = new Map<string, AnyTask>(graph.taskIds.map((id) => [id, id === 'src' ? SOURCE : READER]));
  checkWiring(graph, tasks);
  new Router('src', graph.outputsOf('src')).route();
}

const READER: AnyTask = { process: () => {} };
const SOURCE: AnyTask = { read: async function* () {}, handle: () => {} };

function workerRows(rounds: number): Row[] {
  const small = fanOutSpec('small', SPEC_TASKS / 4);
  const large = fanOutSpec('large', SPEC_TASKS);
  const smallMs = timed(rounds, () => wireWorker(small));
  const largeMs = timed(rounds, () => wireWorker(large));
  return [
    row(`edges.worker_wiring.n${SPEC_TASKS}`, largeMs, 'ms', {
      conditions: `an SDK worker's graph, task wiring and routing of a spec of one source read by ${SPEC_TASKS - 1} tasks (after the coordinator's validation, included), median of ${rounds} rounds`,
    }),
    row('edges.worker_wiring.scaling', largeMs / smallMs, 'ratio', {
      target: MAX_SCALING,
      met: largeMs / smallMs <= MAX_SCALING,
      conditions: `time of ${SPEC_TASKS} tasks ÷ time of ${SPEC_TASKS / 4} (linear: 4, quadratic: 16)`,
    }),
  ];
}

/** Opens a session for every task of `jobId` over gRPC; resolves with its id and the function that closes it. */
async function openSession(
  address: string,
  jobId: string,
  taskIds: string[],
): Promise<{ sessionId: string; close: () => void }> {
  const client = createCoordinatorClient(address);
  const call = client.attach();
  call.on('error', () => {});
  const close = (): void => {
    call.cancel();
    client.close();
  };
  const welcome = new Promise<string>((resolve, reject) => {
    call.on('data', (m: AttachResponse__Output) => {
      if (m.welcome) resolve(m.welcome.sessionId);
    });
    call.once('error', reject);
  });
  call.write({ hello: { workerId: 'bench', jobId, taskIds } });
  try {
    return { sessionId: await welcome, close };
  } catch (err) {
    close();
    throw err;
  }
}

async function heartbeatRows(ctx: ScenarioContext, rounds: number): Promise<Row[]> {
  const config = resolveConfig(
    {
      etcd: ctx.etcd,
      nats: ctx.nats,
      listen: '127.0.0.1:0',
      etcdPrefix: `/${ctx.prefix}/`,
      subjectPrefix: ctx.prefix,
      heartbeatTimeoutMs: 600_000,
    },
    {},
  );
  const coordinator = await runCoordinator(config, silentLogger());
  try {
    await coordinator.whenLeader(10_000);
    const sized = async (n: number): Promise<{ ms: number; health: TaskHealth[] }> => {
      const jobId = `hb${n}`;
      const taskIds = Array.from({ length: n }, (_, i) => `t${i}`);
      await coordinator.coordinator.submitJob({ jobId, tasks: taskIds.map((taskId) => ({ taskId })) });
      const session = await openSession(coordinator.address, jobId, taskIds);
      const health = taskIds.map((taskId) => ({ taskId, busyMs: 1, snapshotMs: 0, snapshotCheckpointId: 0 }));
      const sessions = coordinator.coordinator.sessions;
      try {
        return { ms: timed(rounds, () => sessions.heartbeat(session.sessionId, health)), health };
      } finally {
        session.close();
      }
    };
    const small = await sized(HEARTBEAT_TASKS / 4);
    const large = await sized(HEARTBEAT_TASKS);
    const floorMs = timed(rounds, () => floorOf(large.health));
    const conditions = `Coordinator heartbeat handling (checks and task health) of a session of ${HEARTBEAT_TASKS} tasks attached over gRPC, median of ${rounds} rounds after a warm-up, in process`;
    return [
      row(`edges.floor.heartbeat.n${HEARTBEAT_TASKS}`, floorMs, 'ms', {
        conditions: `a shallow copy of each of the ${HEARTBEAT_TASKS} task reports, in a Map by id`,
      }),
      row(`edges.heartbeat.n${HEARTBEAT_TASKS}`, large.ms, 'ms', {
        ratio: significant(large.ms / floorMs),
        conditions: `${conditions}; ratio to the floor`,
      }),
      row('edges.heartbeat.vs_floor', large.ms / floorMs, 'ratio', {
        target: MAX_VS_FLOOR,
        met: large.ms / floorMs <= MAX_VS_FLOOR,
        conditions: `heartbeat.n${HEARTBEAT_TASKS} ÷ floor.heartbeat.n${HEARTBEAT_TASKS}, both in this run`,
      }),
      row('edges.heartbeat.scaling', large.ms / small.ms, 'ratio', {
        target: MAX_SCALING,
        met: large.ms / small.ms <= MAX_SCALING,
        conditions: `time of ${HEARTBEAT_TASKS} tasks ÷ time of ${HEARTBEAT_TASKS / 4} (linear: 4, quadratic: 16)`,
      }),
    ];
  } finally {
    await coordinator.stop();
  }
}

/** Measures `edges.*`. */
export const edges: Scenario = async (ctx) => {
  const rounds = ctx.quick === true ? 3 : 9;
  const spec = specRows(rounds);
  ctx.log(`spec of ${SPEC_TASKS} tasks validated`);
  const worker = workerRows(rounds);
  ctx.log(`spec of ${SPEC_TASKS} tasks wired by a worker`);
  return [...spec, ...worker, ...(await heartbeatRows(ctx, rounds))];
};
