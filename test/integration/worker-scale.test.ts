/**
 * A job of 100,000 tasks with a wide fan-out (one source read by every
 * other task) costs a worker linear time: building the graph, checking and
 * wiring the tasks, routing, subscribing their inputs on NATS, the
 * heartbeats' task health, and the simulated worker's topology and
 * alignment. Each step is timed at 10,000 tasks and at 100,000, where it
 * must stay within a budget that quadratic work would exceed many times.
 */
import test from 'ava';
import { jobSubjects } from '../../src/bus/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { DataPlane } from '../../src/sdk/data-plane.js';
import { jobGraph, Router, type AnyTask, type StateBackend } from '../../src/sdk/index.js';
import { TaskRunner } from '../../src/sdk/task-runner.js';
import { checkWiring } from '../../src/sdk/wiring.js';
import { BarrierAligner } from '../../src/sim/alignment.js';
import { dataSubscriptions, workerTopology } from '../../src/sim/index.js';
import { natsConnection } from '../helpers/clients.js';
import { useServers } from '../helpers/servers.js';
import { fixedSource } from '../helpers/sources.js';

const servers = useServers({ etcd: false });

const SMALL = 10_000;
const LARGE = 100_000;
/**
 * What one step may take at 100,000 tasks. Linear steps take from a tenth
 * of a second to a few seconds here (NATS registering 100,000
 * subscriptions, on a loaded machine); a quadratic one does some 10^10
 * steps for a fan-out of 100,000 and takes minutes.
 */
const LARGE_BUDGET_MS = 10_000;

/** `src` read by every other task. */
function fanOutSpec(n: number): JobSpec {
  const readers = Array.from({ length: n - 1 }, (_, i) => ({ taskId: `r${i}`, inputs: ['src'] }));
  return { jobId: 'wide', tasks: [{ taskId: 'src' }, ...readers] };
}

const reader: AnyTask = { process: () => {} };

/** Milliseconds `run` takes, the best of `times`. */
async function timed(run: () => unknown, times: number): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < times; i += 1) {
    const started = performance.now();
    await run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

/** Times `step` at both sizes (for the log); at 100,000 tasks it must stay within `LARGE_BUDGET_MS`. */
async function scales(
  t: { log: (m: string) => void; true: (v: boolean, m: string) => void },
  name: string,
  step: (n: number) => unknown,
): Promise<void> {
  const small = await timed(() => step(SMALL), 2);
  const large = await timed(() => step(LARGE), 1);
  t.log(`${name}: ${small.toFixed(0)} ms for ${SMALL} tasks, ${large.toFixed(0)} ms for ${LARGE}`);
  t.true(large <= LARGE_BUDGET_MS, `${name} took ${large.toFixed(0)} ms for ${LARGE} tasks`);
}

test('graph, wiring, routing and the simulated topology take linear time', async (t) => {
  const specs = new Map([SMALL, LARGE].map((n) => [n, fanOutSpec(n)]));
  const spec = (n: number): JobSpec => specs.get(n) as JobSpec;
  await scales(t, 'graph and wiring', (n) => {
    const graph = jobGraph(spec(n) as never);
    const tasks = new Map<string, AnyTask>(graph.taskIds.map((id) => [id, id === 'src' ? fixedSource(1) : reader]));
    checkWiring(graph, tasks);
    for (const id of graph.taskIds) graph.inputsOf(id);
  });
  await scales(t, 'routing', (n) => {
    const router = new Router('src', jobGraph(spec(n) as never).outputsOf('src'));
    for (let i = 0; i < n; i += 1) router.route({ key: `k${i}` });
    router.route();
  });
  await scales(t, 'simulated topology and alignment', (n) => {
    const taskIds = (spec(n).tasks ?? []).map((task) => task.taskId ?? '');
    const topology = workerTopology(spec(n), taskIds);
    dataSubscriptions(jobSubjects('p.wide'), topology);
    const aligner = new BarrierAligner(topology.inputsByTask);
    for (const id of topology.inputsByTask.keys()) aligner.offer(id, 'src', 1, 0);
  });
});

test('subscribing the inputs of every task and their health for heartbeats take linear time', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const built = new Map<number, { graph: ReturnType<typeof jobGraph>; runners: TaskRunner[] }>();
  t.teardown(() => Promise.all([...built.values()].flatMap(({ runners }) => runners.map((r) => r.close()))));
  // The runners are built once per size, outside the timed steps.
  for (const n of [SMALL, LARGE]) {
    const graph = jobGraph(fanOutSpec(n) as never);
    const plane = new DataPlane(nc, 'unused.wide', () => {});
    built.set(n, { graph, runners: graph.taskIds.map((taskId) => runner(taskId, graph, plane, nc)) });
  }
  let round = 0;
  await scales(t, 'subscriptions', async (n) => {
    const { graph } = built.get(n) ?? {};
    if (graph === undefined) return;
    round += 1;
    const plane = new DataPlane(nc, `scale${round}.wide`, () => {});
    const readers = new Map(graph.taskIds.filter((id) => id !== 'src').map((id) => [id, graph.inputsOf(id)]));
    const unsubscribe = await plane.subscribe(readers, () => {});
    unsubscribe();
  });
  await scales(t, 'task health of 10 heartbeats', (n) => {
    const now = performance.now();
    const runners = built.get(n)?.runners ?? [];
    for (let beat = 0; beat < 10; beat += 1) runners.map((r) => r.health(now));
  });
});

function runner(
  taskId: string,
  graph: ReturnType<typeof jobGraph>,
  plane: DataPlane,
  nc: Awaited<ReturnType<typeof natsConnection>>,
): TaskRunner {
  return new TaskRunner({
    jobId: 'wide',
    taskId,
    task: taskId === 'src' ? fixedSource(1) : reader,
    inputs: graph.inputsOf(taskId),
    outputs: graph.outputsOf(taskId),
    mode: 'aligned',
    plane,
    backend: {} as StateBackend,
    nats: nc,
    logger: silentLogger(),
    maxQueuedSourceMessages: 16,
    abandonCallAfterMs: 1000,
    onResult: () => {},
    onSnapshot: () => {},
    onFailure: () => {},
  });
}
