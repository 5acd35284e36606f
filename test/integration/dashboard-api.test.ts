/**
 * The dashboard's JSON API and events on a leader and on a standby (which
 * forwards to the leader over gRPC): Flink-shaped checkpoint statistics,
 * one checkpoint's per-task figures, the policy, errors as JSON, live
 * events, and what a standby says while it has no leader to ask.
 */
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-argument -- JSON bodies, read field by field */
import test from 'ava';
import { eventually, useServers } from '../helpers/index.js';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';

const servers = useServers();

interface Reply {
  status: number;
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON, read field by field
  body: any;
}

async function api(address: string, path: string): Promise<Reply> {
  const res = await fetch(`http://${address}${path}`);
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  return { status: res.status, type, body: type.startsWith('application/json') ? JSON.parse(text) : text };
}

/**
 * Reads server-sent events from `path` until `done` says enough or the
 * stream ends; calls `live` once the first event arrived (the server sends
 * it once its watch is live: every later checkpoint event is streamed).
 */
async function events(
  address: string,
  path: string,
  done: (seen: Array<{ event: string; data: unknown }>) => boolean,
  live?: () => Promise<unknown>,
): Promise<Array<{ event: string; data: unknown }>> {
  const abort = new AbortController();
  const res = await fetch(`http://${address}${path}`, { signal: abort.signal });
  const seen: Array<{ event: string; data: unknown }> = [];
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let kick: Promise<unknown> | undefined;
  try {
    while (!done(seen)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined) seen.push({ event, data: JSON.parse(data) });
      }
      if (seen.length > 0) kick ??= live?.();
    }
  } finally {
    abort.abort();
    await kick;
  }
  return seen;
}

test('leader and standby serve the same Flink-shaped statistics, details, policy and JSON errors', async (t) => {
  const c = await startTestCoordinator(t, servers);
  const spec = fanInSpec('djob', 2, 1, { tolerableFailures: -1, timeoutMs: 30_000, retained: 2 });
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  const w = await c.worker({ jobId: 'djob', workerId: 'w0', taskIds: ids, spec });
  await c.started('djob');
  const trigger = () => c.client.triggerCheckpoint({ jobId: 'djob', wait: true }, { deadlineMs: 10_000 });
  const first = (await trigger()).checkpoint;
  w.setBehaviour('src-0', 'decline');
  const declined = (await trigger()).checkpoint;
  w.setBehaviour('src-0', 'ack');
  const last = (await trigger()).checkpoint;
  const standby = await c.standby();
  const leaderHttp = c.running.httpAddress;

  const cluster = await api(leaderHttp, '/api/v1/cluster');
  t.like(cluster.body, { role: 'leader', leader: c.running.advertise, self: c.running.advertise, served_by: 'local' });
  const standbyCluster = await eventually(
    async () => {
      const r = await api(standby.httpAddress, '/api/v1/cluster');
      return r.body.leader === c.running.advertise ? r : undefined;
    },
    { what: 'the standby knows the leader' },
  );
  t.like(standbyCluster.body, { role: 'standby', served_by: 'leader', ready: true });

  const jobs = await api(leaderHttp, '/api/v1/jobs');
  t.is(jobs.status, 200);
  t.regex(jobs.type, /^application\/json/);
  t.like(jobs.body.jobs[0], {
    id: 'djob',
    state: 'RUNNING',
    epoch: 1,
    attempt: 'RUNNING',
    tasks: 3,
    ready_tasks: 3,
    counts: { total: 3, completed: 2, failed: 1, in_progress: 0, restored: 0 },
    latest: {
      completed: { id: last?.checkpointId, status: 'COMPLETED' },
      failed: { id: declined?.checkpointId, abort_reason: 'DECLINED' },
      restored: null,
    },
  });
  const fromStandby = await api(standby.httpAddress, '/api/v1/jobs');
  t.is(fromStandby.body.served_by, 'leader');
  t.deepEqual({ ...fromStandby.body, served_by: 'local' }, jobs.body, 'the standby shows what the leader has');

  const stats = await api(leaderHttp, '/api/v1/jobs/djob/checkpoints');
  t.like(stats.body, { counts: { total: 3, completed: 2, failed: 1 }, summary: { end_to_end_duration: { count: 2 } } });
  t.deepEqual(
    stats.body.history.map((h: { id: number; status: string }) => [h.id, h.status]),
    [
      [last?.checkpointId, 'COMPLETED'],
      [declined?.checkpointId, 'FAILED'],
      [first?.checkpointId, 'COMPLETED'],
    ],
  );
  const failed = stats.body.history[1];
  t.true(failed.failure_timestamp >= failed.trigger_timestamp);
  t.regex(failed.failure_message, /src-0/);
  const done = stats.body.history[0];
  t.true(done.end_to_end_duration >= 0 && done.latest_ack_timestamp >= done.trigger_timestamp);
  t.is(done.num_acknowledged_subtasks, 3);
  t.deepEqual((await api(standby.httpAddress, '/api/v1/jobs/djob/checkpoints')).body, {
    ...stats.body,
    served_by: 'leader',
  });

  const details = await api(standby.httpAddress, `/api/v1/jobs/djob/checkpoints/details/${last?.checkpointId}`);
  t.is(details.status, 200);
  t.is(details.body.tasks.length, 3);
  for (const task of details.body.tasks) {
    t.like(task, { status: 'ACKNOWLEDGED' });
    t.true(task.ack_timestamp >= done.trigger_timestamp && task.end_to_end_duration >= 0);
  }
  const declinedDetails = await api(leaderHttp, `/api/v1/jobs/djob/checkpoints/details/${declined?.checkpointId}`);
  t.like(
    declinedDetails.body.tasks.find((x: { task_id: string }) => x.task_id === 'src-0'),
    { status: 'PENDING', ack_timestamp: 0 },
  );

  const config = await api(leaderHttp, '/api/v1/jobs/djob/checkpoints/config');
  t.like(config.body, {
    mode: 'ALIGNED',
    interval: 0,
    interval_in_force: 0,
    timeout: 30_000,
    max_concurrent: 1,
    tolerable_failed_checkpoints: -1,
    retained: 2,
    aligned_checkpoint_timeout: 0,
    adaptive: null,
  });

  for (const [path, status] of [
    ['/api/v1/jobs/nope', 404],
    ['/api/v1/jobs/nope/checkpoints', 404],
    ['/api/v1/jobs/djob/checkpoints/details/999999', 404],
    ['/api/v1/jobs/djob/checkpoints/details/x1', 400],
    ['/api/v1/jobs/bad%20id', 400],
    ['/api/v1/jobs/%E0%A4%A', 400],
    ['/api/v1/jobs/djob/other', 404],
    ['/api/v1/nothing', 404],
  ] as const) {
    for (const address of [leaderHttp, standby.httpAddress]) {
      const r = await api(address, path);
      t.is(r.status, status, `${path} on ${address}`);
      t.true(Array.isArray(r.body.errors) && typeof r.body.errors[0] === 'string', path);
    }
  }
  t.is((await fetch(`http://${leaderHttp}/api/v1/jobs`, { method: 'POST' })).status, 405);
  t.is((await api(leaderHttp, '/static/../../package.json')).status, 404);
});

test('events stream each checkpoint live, on the leader and through a standby; a standby without leader says so', async (t) => {
  const c = await startTestCoordinator(t, servers, { leaseTtlMs: 2000 });
  const spec = fanInSpec('ejob', 1, 1);
  await c.client.submitJob({ spec });
  const ids = (spec.tasks ?? []).map((task) => task.taskId as string);
  await c.worker({ jobId: 'ejob', workerId: 'w0', taskIds: ids, spec });
  await c.started('ejob');
  const standby = await c.standby();
  await eventually(
    async () => (await api(standby.httpAddress, '/api/v1/cluster')).body.leader === c.running.advertise || undefined,
    {
      what: 'the standby knows the leader',
    },
  );
  const trigger = () => c.client.triggerCheckpoint({ jobId: 'ejob', wait: true }, { deadlineMs: 10_000 });
  const completedEvent = (seen: Array<{ event: string; data: unknown }>) =>
    seen.some((e) => e.event === 'checkpoint' && (e.data as { status: string }).status === 'COMPLETED');
  for (const address of [c.running.httpAddress, standby.httpAddress]) {
    const seen = await events(address, '/api/v1/events?job=ejob', completedEvent, trigger);
    t.is(seen[0]?.event, 'cluster', 'the stream starts with who serves it');
    const states = seen
      .filter((e) => e.event === 'checkpoint')
      .map((e) => e.data as { status: string; job_id: string });
    t.deepEqual(
      states.map((s) => s.status),
      ['IN_PROGRESS', 'COMPLETED'],
      address,
    );
    t.true(states.every((s) => s.job_id === 'ejob'));
  }
  const unknown = await api(c.running.httpAddress, '/api/v1/events?job=nope');
  t.is(unknown.status, 404);

  // The leader dies: until its lease expires the standby cannot answer, then it leads.
  await c.running.kill();
  const during = await api(standby.httpAddress, '/api/v1/jobs');
  t.is(during.status, 503, JSON.stringify(during.body));
  t.regex(during.body.errors[0], /.+/);
  const after = await eventually(
    async () => {
      const r = await api(standby.httpAddress, '/api/v1/cluster');
      return r.body.role === 'leader' ? r : undefined;
    },
    { timeoutMs: 20_000, what: 'the standby leads' },
  );
  t.like(after.body, { served_by: 'local', leader: standby.advertise });
  const jobs = await eventually(
    async () => {
      const r = await api(standby.httpAddress, '/api/v1/jobs');
      return r.status === 200 ? r : undefined;
    },
    { what: 'the new leader answers' },
  );
  t.like(jobs.body.jobs[0], { id: 'ejob', counts: { completed: 2 } });
});
