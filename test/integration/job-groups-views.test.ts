/**
 * What a coordinator shows of job groups, on real etcd, NATS and gRPC: the
 * dashboard's header (in headless Chromium) and `/api/v1/cluster` list the
 * groups and each group's leader, `/metrics` says per group whether the
 * process leads it; and the watch of every job, over gRPC and as the
 * dashboard's events, stays open while a group's leader is killed and
 * another takes the group over, streaming that group's events again.
 */
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return -- JSON bodies, read field by field */
import test from 'ava';
import { createCoordinatorClient, createQueryClient } from '../../src/client/index.js';
import { jobGroupOf } from '../../src/core/job-groups.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { RunningCoordinator } from '../../src/server/run.js';
import { launchBrowser, screenshots, watchedPage } from '../helpers/browser.js';
import { eventually, sample, uniquePrefix, useServers } from '../helpers/index.js';
import {
  balancedGroups,
  groupsSimWorker,
  jobIdsOfGroups,
  startGroupsCoordinator,
  twoTaskSpec,
} from '../helpers/job-groups.js';
import { promtoolCheck } from '../helpers/prometheus.js';

const servers = useServers();

/** How long the page may take to show what changed: a few polls of the cluster. */
const UI_MS = 15_000;
/** A group's take-over after its leader was killed: the lease's expiry, a campaign, a start. */
const TAKEOVER_MS = 20_000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON, read field by field
async function json(address: string, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.json() };
}

/** What `/api/v1/cluster` should list: each group's leader as the processes say. */
function groupLeaders(nodes: readonly RunningCoordinator[], groups: number): Array<{ group: number; leader: string }> {
  return Array.from({ length: groups }, (_, group) => ({
    group,
    leader: nodes.find((n) => n.group(group).isLeader)?.advertise ?? '',
  }));
}

test('the dashboard, /api/v1/cluster and /metrics show each job group and its leader', async (t) => {
  const prefix = uniquePrefix(t);
  const nodes = [
    await startGroupsCoordinator(t, servers, prefix, 2),
    await startGroupsCoordinator(t, servers, prefix, 2),
  ];
  const leaders = await balancedGroups(nodes);
  const expected = groupLeaders(nodes, 2);
  for (const node of nodes) {
    const cluster = await eventually(
      async () => {
        const r = await json(node.httpAddress, '/api/v1/cluster');
        return JSON.stringify(r.body.job_groups) === JSON.stringify(expected) ? r.body : undefined;
      },
      { what: `${node.advertise} listing each group's leader` },
    );
    t.like(cluster, { role: 'leader', self: node.advertise });
    const text = await (await fetch(`http://${node.httpAddress}/metrics`)).text();
    t.is(sample(text, 'ckpt_coordinator_is_leader'), 1, 'it leads a group');
    for (const g of [0, 1]) {
      t.is(sample(text, `ckpt_job_group_is_leader{job_group="${g}"}`), leaders[g] === node ? 1 : 0, `group ${g}`);
    }
    const lint = await promtoolCheck(text, 'ckpt_');
    t.true(lint.ok, `promtool check metrics: ${lint.out}`);
  }

  const [watched, other] = [leaders[0]!, leaders[1]!];
  const browser = await launchBrowser(t);
  const shot = await screenshots(t, 'job-groups');
  const { page, errors } = await watchedPage(browser);
  await page.goto(`http://${watched.httpAddress}/`);
  await page.locator('#cluster-groups').waitFor({ state: 'visible', timeout: UI_MS });
  t.is(await page.textContent('#cluster-group-count'), '2');
  t.true(await page.locator('#cluster-leader-item').isHidden(), 'one leader is not the whole story');
  for (const { group, leader } of expected) {
    const item = page.locator(`#cluster-group-leaders li[data-group="${group}"]`);
    t.is(await item.getAttribute('data-leader'), leader);
    t.regex((await item.textContent()) ?? '', new RegExp(`group ${group}.*${leader.replace(/\./g, '\\.')}`));
  }
  t.is(await page.getAttribute('#cluster-group-leaders li[data-group="0"]', 'data-self'), 'true');
  await shot(page, '1-two-groups');

  // The leader of group 1 dies: the header says so, then names the one that took the group over.
  await other.kill();
  await page
    .locator('#cluster-group-leaders li[data-group="1"][data-leader=""]')
    .or(page.locator(`#cluster-group-leaders li[data-group="1"][data-leader="${watched.advertise}"]`))
    .waitFor({ timeout: TAKEOVER_MS });
  await page
    .locator(`#cluster-group-leaders li[data-group="1"][data-leader="${watched.advertise}"]`)
    .waitFor({ timeout: TAKEOVER_MS });
  t.is(await page.getAttribute('#cluster-group-leaders li[data-group="1"]', 'data-self'), 'true');
  await page.locator('#leader-banner').waitFor({ state: 'hidden', timeout: UI_MS });
  await shot(page, '2-one-took-both');
  t.deepEqual(errors, []);
});

/** `(job, checkpoint, state)` of an event, to find one seen twice. */
const eventKey = (s: { jobId: string; checkpointId: number; state: string }): string =>
  `${s.jobId}/${s.checkpointId}/${s.state}`;

test("a watch of every job stays open while a group's leader is killed, and streams that group's events after the take-over", async (t) => {
  const prefix = uniquePrefix(t);
  const nodes: RunningCoordinator[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startGroupsCoordinator(t, servers, prefix, 3));
  const addresses = nodes.map((n) => n.advertise);
  const leaders = await balancedGroups(nodes);
  const [watched, victim] = [leaders[0]!, leaders[1]!];
  const ids = jobIdsOfGroups(3, 1);
  const client = createCoordinatorClient(addresses);
  // The watch goes to one coordinator only, the leader of group 0: it fans out to the others.
  const query = createQueryClient(watched.advertise);
  t.teardown(() => {
    client.close();
    query.close();
  });
  for (const jobId of ids) await client.submitJob({ spec: twoTaskSpec(jobId) });
  await Promise.all(ids.map((jobId) => groupsSimWorker(t, servers, prefix, addresses, jobId)));

  // Over gRPC: every event of every job, until the test ends it.
  const controller = new AbortController();
  t.teardown(() => controller.abort());
  const seen: CheckpointSummary__Output[] = [];
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  let streamEnded: string | undefined;
  const watching = (async () => {
    try {
      for await (const s of query.watchCheckpoints({}, { signal: controller.signal, onOpen: () => opened() }))
        seen.push(s);
      if (!controller.signal.aborted) streamEnded = 'the stream ended';
    } catch (err) {
      streamEnded = String(err);
    }
  })();
  // As the dashboard's events: the first event comes once the fan-out watches every group.
  const sse = new AbortController();
  t.teardown(() => sse.abort());
  const res = await fetch(`http://${watched.httpAddress}/api/v1/events`, { signal: sse.signal });
  const sseText: string[] = [];
  let sseEnded = false;
  const sseReading = (async () => {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        sseText.push(decoder.decode(value, { stream: true }));
      }
      sseEnded = true;
    } catch {
      // Aborted at the end of the test.
    }
  })();
  await open;
  await eventually(() => sseText.join('').includes('event: cluster') || undefined, { what: 'the events live' });

  const checkpoint = async (jobId: string): Promise<number> =>
    (
      await eventually(
        async () => {
          const r = await client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: 10_000 });
          return r.checkpoint?.state === 'CHECKPOINT_STATE_COMPLETED' ? r.checkpoint : undefined;
        },
        { timeoutMs: TAKEOVER_MS, what: `a checkpoint of ${jobId}` },
      )
    ).checkpointId;
  const watchedCompletion = (jobId: string, id: number) =>
    seen.some((s) => s.jobId === jobId && s.checkpointId === id && s.state === 'CHECKPOINT_STATE_COMPLETED') &&
    sseText.join('').includes(`"job_id":"${jobId}","id":${id},"status":"COMPLETED"`);
  const completedSeen = (jobId: string, id: number) =>
    eventually(
      () =>
        seen.some((s) => s.jobId === jobId && s.checkpointId === id && s.state === 'CHECKPOINT_STATE_COMPLETED') &&
        sseText.join('').includes(`"job_id":"${jobId}","id":${id},"status":"COMPLETED"`) &&
        true,
      { what: `checkpoint ${id} of ${jobId} watched` },
    );
  for (const jobId of ids) await completedSeen(jobId, await checkpoint(jobId));

  // Kill the leader of group 1; the group moves; the streams stay open and carry its events again.
  const moved = ids.find((jobId) => jobGroupOf(jobId, 3) === 1)!;
  await victim.kill();
  await eventually(() => nodes.some((n) => n !== victim && n.group(1).isLeader) || undefined, {
    timeoutMs: TAKEOVER_MS,
    what: 'a new leader of job group 1',
  });
  // Events between the old leader's end and the watch's move to the new one are not streamed (as when a
  // single leader changes): a checkpoint of the moved job shows on both streams soon after the take-over.
  const after = await eventually(
    async () => {
      const id = await checkpoint(moved);
      const shown = await eventually(() => watchedCompletion(moved, id) || undefined, {
        timeoutMs: 2000,
        what: `checkpoint ${id} of ${moved} watched`,
      }).catch(() => undefined);
      return shown === undefined ? undefined : id;
    },
    { timeoutMs: TAKEOVER_MS, what: `a checkpoint of ${moved} watched after the take-over` },
  );
  for (const jobId of ids.filter((j) => j !== moved)) await completedSeen(jobId, await checkpoint(jobId));
  t.is(streamEnded, undefined, 'the gRPC watch never ended');
  t.false(sseEnded, 'the events stream never ended');
  const keys = seen.map(eventKey);
  t.deepEqual(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    'no event twice',
  );
  t.true(
    seen.some((s) => s.jobId === moved && s.checkpointId === after && s.state === 'CHECKPOINT_STATE_PENDING'),
    'the moved group streams from the start of its checkpoints',
  );
  controller.abort();
  sse.abort();
  await Promise.all([watching, sseReading]);
});
