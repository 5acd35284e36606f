/**
 * A job of 100,000 tasks with a wide fan-out (one source read by every
 * other task) is wired by a worker whole and right: the graph, the tasks'
 * wiring, routing, the data subscriptions of every reader on NATS, and the
 * simulated worker's topology and alignment. How their cost grows with the
 * task count is measured by `make bench` (scenario `edges`), not here.
 */
import test from 'ava';
import { jobSubjects } from '../../src/bus/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { DataPlane } from '../../src/sdk/data-plane.js';
import { jobGraph, Router, type AnyTask } from '../../src/sdk/index.js';
import { checkWiring } from '../../src/sdk/wiring.js';
import { BarrierAligner } from '../sim/alignment.js';
import { workerTopology } from '../sim/index.js';
import { dataSubscriptions, subscribeData } from '../../src/worker-protocol/index.js';
import { natsConnection } from '../helpers/clients.js';
import { useServers } from '../helpers/servers.js';
import { fixedSource } from '../helpers/sources.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers({ etcd: false });

const TASKS = 100_000;

/** `src` read by every other task. */
function fanOutSpec(n: number): JobSpec {
  const readers = Array.from({ length: n - 1 }, (_, i) => ({ taskId: `r${i}`, inputs: ['src'] }));
  return { jobId: 'wide', tasks: [{ taskId: 'src' }, ...readers] };
}

const reader: AnyTask = { process: () => {} };

test('the graph, wiring, routing and the simulated topology of 100,000 tasks are whole', (t) => {
  const spec = fanOutSpec(TASKS);
  const graph = jobGraph(spec as never);
  t.is(graph.taskIds.length, TASKS);
  const tasks = new Map<string, AnyTask>(graph.taskIds.map((id) => [id, id === 'src' ? fixedSource(1) : reader]));
  t.notThrows(() => checkWiring(graph, tasks));
  t.is(graph.outputsOf('src').length, TASKS - 1);
  t.deepEqual(graph.inputsOf('r99998'), ['src']);

  const router = new Router('src', graph.outputsOf('src'));
  t.is(router.route().length, TASKS - 1, 'a record without a key goes to every reader');
  const targets = new Set<string>();
  for (let i = 0; i < 4 * TASKS; i += 1) targets.add(router.route({ key: `k${i}` })[0] ?? '');
  t.true(targets.size > TASKS / 2, `keys spread over ${targets.size} readers`);

  const topology = workerTopology(spec, graph.taskIds);
  t.deepEqual(topology.sources, ['src']);
  t.is(topology.inputsByTask.size, TASKS - 1);
  t.is(
    dataSubscriptions(jobSubjects('p.wide'), topology.inputsByTask).length,
    1,
    'one wildcard subscription for so many edges',
  );
  const aligner = new BarrierAligner(topology.inputsByTask);
  let aligned = 0;
  for (const id of topology.inputsByTask.keys()) if (aligner.offer(id, 'src', 1, 0) !== undefined) aligned += 1;
  t.is(aligned, TASKS - 1, 'every reader aligned barrier 1 from its one input');
});

test('the inputs of 100,000 readers are subscribed on NATS and unsubscribed', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const graph = jobGraph(fanOutSpec(TASKS) as never);
  const plane = new DataPlane(nc, 'scale.wide', () => {});
  const readers = new Map(graph.taskIds.filter((id) => id !== 'src').map((id) => [id, graph.inputsOf(id)]));
  let arrived: (to: string) => void = () => {};
  const first = new Promise<string>((resolve) => {
    arrived = resolve;
  });
  const unsubscribe = await plane.subscribe(readers, (edge) => arrived(edge.to));
  plane.publishRecord('src', 'r99998', new TextEncoder().encode('x'), 1);
  t.is(await first, 'r99998', 'a record reaches the one reader it is sent to');
  unsubscribe();
});

test('a wildcard data subscription hands every message of one edge the same edge object, and only input edges', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const subjects = jobSubjects('scale.many');
  // Two readers of 40 inputs each: 80 edges, above the per-edge threshold, so one wildcard per reader.
  const inputs = Array.from({ length: 40 }, (_, i) => `s${i}`);
  const readers = new Map([
    ['r0', inputs],
    ['r1', inputs],
  ]);
  t.deepEqual(dataSubscriptions(subjects, readers), [subjects.inputs('r0'), subjects.inputs('r1')]);
  const seen: { edge: { from: string; to: string }; data: string }[] = [];
  const unsubscribe = await subscribeData(
    nc,
    subjects,
    readers,
    (edge, msg) => seen.push({ edge, data: new TextDecoder().decode(msg.data) }),
    () => {},
  );
  for (const data of ['a', 'b']) nc.publish(subjects.edge('s3', 'r1'), data);
  nc.publish(subjects.edge('stranger', 'r1'), 'not an input');
  nc.publish(subjects.edge('s3', 'r0'), 'c');
  await eventually(() => seen.length >= 3, { what: 'three messages of input edges' });
  await nc.flush();
  t.deepEqual(
    seen.map((s) => `${s.edge.from}->${s.edge.to}:${s.data}`),
    ['s3->r1:a', 's3->r1:b', 's3->r0:c'],
  );
  t.is(seen[0]?.edge, seen[1]?.edge, 'one object per edge, which record counts are keyed by');
  unsubscribe();
});
