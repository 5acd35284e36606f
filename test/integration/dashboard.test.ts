/**
 * The dashboard in a real browser (headless Chromium) against a leader and
 * a standby coordinator on real etcd and NATS, with the word count running
 * on SDK workers: the jobs table, a checkpoint appearing in the history
 * without a reload, one checkpoint's task table and its sorting, the
 * standby naming the leader, and the pages while the leader is killed and
 * a standby takes over. Screenshots of each step go to
 * `.tmp/test-artifacts/dashboard/`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import test, { type ExecutionContext } from 'ava';
import type { Page } from 'playwright-core';
import { sentences } from '../../examples/wordcount/corpus.js';
import { INPUT_STREAM, WORKER_TASKS, inputSubject, wordCountSpec } from '../../examples/wordcount/job.js';
import { taskFor } from '../../examples/wordcount/tasks.js';
import { createLocalDirectoryBackend, createWorker } from '../../src/sdk/index.js';
import type { RunningCoordinator } from '../../src/server/run.js';
import { launchBrowser, screenshots, watchedPage } from '../helpers/browser.js';
import { natsConnection } from '../helpers/clients.js';
import { startCluster } from '../helpers/cluster.js';
import { eventually, useServers } from '../helpers/index.js';

const servers = useServers();

const JOB_ID = 'wordcount';
/** How long the page may take to show what changed: a few polls and refreshes. */
const UI_MS = 15_000;
/** A fail-over as the page shows it: the lease's expiry, a campaign, a start, the workers attaching again. */
const FAILOVER_MS = 30_000;
/** The job's aligned checkpoint timeout: far above what the word count takes to align, so none times out. */
const ALIGNED_TIMEOUT_MS = 20_000;

/** The word count on three SDK workers that follow the leader, fed sentences until the test ends. */
async function startWordCount(t: ExecutionContext, coordinators: string[], submit: RunningCoordinator): Promise<void> {
  const nc = await natsConnection(t, servers.natsUrl);
  await (await jetstreamManager(nc)).streams.add({ name: INPUT_STREAM, subjects: ['sentences.*'] });
  const spec = wordCountSpec(JOB_ID, 1000);
  await submit.coordinator.submitJob({
    ...spec,
    policy: { ...spec.policy, alignedCheckpointTimeoutMs: ALIGNED_TIMEOUT_MS },
  });
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const state = await createLocalDirectoryBackend({ dir, fsync: false });
  for (const [i, taskIds] of WORKER_TASKS.entries()) {
    const worker = createWorker({
      coordinator: coordinators,
      nats: [servers.natsUrl],
      jobId: JOB_ID,
      workerId: `w${i}`,
      state,
    });
    for (const taskId of taskIds) worker.addTask(taskId, taskFor(taskId));
    t.teardown(() => worker.stop());
    await worker.start();
  }
  const js = jetstream(nc);
  const corpus = sentences(100_000);
  let fed = 0;
  const feeder = setInterval(() => {
    for (let i = 0; i < 10; i++, fed++) js.publish(inputSubject(fed % 2), corpus[fed % corpus.length]).catch(() => {});
  }, 200);
  t.teardown(() => clearInterval(feeder));
}

/** What the checks below read of an element in the page (the tests compile without the DOM's types). */
interface PageElement {
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageElement | null;
  readonly textContent: string | null;
  readonly nextElementSibling: PageElement | null;
}

/** The checkpoint ids of the history table, top (newest) first. */
function historyIds(page: Page): Promise<number[]> {
  return page
    .locator('#history-table tr[data-checkpoint-id]')
    .evaluateAll((rows) => (rows as unknown as PageElement[]).map((r) => Number(r.getAttribute('data-checkpoint-id'))));
}

/** The value the policy shows for `term`; undefined when it shows none. */
function policyValue(page: Page, term: string): Promise<string | undefined> {
  return page.locator('#policy > dt').evaluateAll((terms, wanted) => {
    const found = (terms as unknown as PageElement[]).find((dt) => dt.textContent === wanted);
    return found?.nextElementSibling?.textContent ?? undefined;
  }, term);
}

/** The task table's task ids and the values of column `key`, in the order shown. */
function taskColumn(page: Page, key: string): Promise<{ task: string; value: string }[]> {
  return page.locator('#tasks-table tbody tr').evaluateAll(
    (rows, k) =>
      (rows as unknown as PageElement[]).map((r) => ({
        task: r.getAttribute('data-task-id') ?? '',
        value: r.querySelector(`td[data-key="${k}"]`)?.getAttribute('data-value') ?? '',
      })),
    key,
  );
}

test('the dashboard shows jobs, live checkpoints and tasks, on the leader and the standby, across a fail-over', async (t) => {
  t.timeout(180_000);
  const cluster = await startCluster(t, servers, 2);
  const leader = await cluster.leader();
  const standby = cluster.nodes.find((node) => node !== leader) as RunningCoordinator;
  await eventually(() => standby.leader === leader.advertise, { what: 'the standby knowing the leader' });
  await startWordCount(t, cluster.addresses, leader);
  const browser = await launchBrowser(t);
  const shot = await screenshots(t, 'dashboard');
  const { page, errors } = await watchedPage(browser);

  // The jobs table.
  await page.goto(`http://${leader.httpAddress}/`);
  const jobRow = page.locator(`#jobs-table tr[data-job-id="${JOB_ID}"]`);
  await jobRow.waitFor({ timeout: UI_MS });
  await eventually(async () => (await jobRow.getAttribute('data-state')) === 'RUNNING', { timeoutMs: UI_MS });
  t.is(await page.textContent('#cluster-role'), 'leader');
  await page.locator(`#jobs-table tr[data-job-id="${JOB_ID}"] .latest-completed`).waitFor({ timeout: UI_MS });
  await shot(page, '01-jobs');

  // A new checkpoint appears in the history without a reload.
  await jobRow.locator('a.job-link').click();
  await page.locator('#history-table tr[data-checkpoint-id]').first().waitFor({ timeout: UI_MS });
  await page.locator('body[data-live="open"]').waitFor({ timeout: UI_MS });
  await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));
  const before = Math.max(...(await historyIds(page)));
  await eventually(async () => Math.max(...(await historyIds(page))) > before, {
    timeoutMs: UI_MS,
    what: `a checkpoint after ${before} in the history`,
  });
  t.true(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded === true), 'not reloaded');
  t.regex((await page.textContent('[data-count="completed"] .card-value')) ?? '', /^[1-9]/);
  t.truthy(await page.locator('#summary-table tr[data-figure="end_to_end_duration"]').count());
  await eventually(async () => Number(await page.getAttribute('#chart-duration', 'data-points')) >= 2, {
    timeoutMs: UI_MS,
    what: 'two points in the duration chart',
  });
  t.is(await page.locator('#policy').count(), 1);
  t.is(await policyValue(page, 'Aligned checkpoint timeout'), '20.0 s', "the policy's aligned checkpoint timeout");
  t.is(await policyValue(page, 'Mode'), 'aligned');
  await shot(page, '02-job');

  // One checkpoint's tasks, sorted by end-to-end (slowest first), then by task id both ways.
  const completed = page.locator('#history-table tr[data-status="COMPLETED"] a.checkpoint-link').first();
  await completed.click();
  await page.locator('#tasks-table tbody tr').first().waitFor({ timeout: UI_MS });
  // Every checkpoint aligned: no task stored in-flight records.
  t.is(await page.textContent('#in-flight'), 'none');
  t.is(await page.getAttribute('#in-flight', 'data-tasks'), '0');
  const byDuration = await taskColumn(page, 'end_to_end_duration');
  t.is(byDuration.length, 5);
  const durations = byDuration.map((r) => Number(r.value));
  t.deepEqual(
    durations,
    [...durations].sort((a, b) => b - a),
    'slowest first',
  );
  const taskIds = byDuration.map((r) => r.task).sort();
  await page.click('#tasks-table th[data-sort="task_id"]');
  t.deepEqual(
    (await taskColumn(page, 'task_id')).map((r) => r.task),
    taskIds,
  );
  t.is(await page.getAttribute('#tasks-table th[data-sort="task_id"]', 'aria-sort'), 'ascending');
  await page.click('#tasks-table th[data-sort="task_id"]');
  t.deepEqual(
    (await taskColumn(page, 'task_id')).map((r) => r.task),
    [...taskIds].reverse(),
  );
  await page.click('#tasks-table th[data-sort="state_size"]');
  const sizes = (await taskColumn(page, 'state_size')).map((r) => Number(r.value));
  t.deepEqual(
    sizes,
    [...sizes].sort((a, b) => a - b),
    'numeric sort, ascending',
  );
  await shot(page, '03-checkpoint');

  // The standby's page names the leader and shows the leader's data.
  const { page: onStandby, errors: standbyErrors } = await watchedPage(browser);
  await onStandby.goto(`http://${standby.httpAddress}/#/jobs/${JOB_ID}`);
  await onStandby.locator('#history-table tr[data-checkpoint-id]').first().waitFor({ timeout: UI_MS });
  await eventually(async () => (await onStandby.textContent('#cluster-role')) === 'standby', { timeoutMs: UI_MS });
  t.is(await onStandby.textContent('#cluster-leader'), leader.advertise);
  t.true(await onStandby.locator('#leader-banner').isHidden());
  await shot(onStandby, '04-standby');

  // The leader dies: its own page keeps its data under the banner; the standby's takes over.
  await page.goBack();
  await page.locator('#history-table tr[data-checkpoint-id]').first().waitFor({ timeout: UI_MS });
  const lastBeforeKill = Math.max(...(await historyIds(onStandby)));
  await leader.kill();
  const banner = page.locator('#leader-banner');
  await banner.waitFor({ state: 'visible', timeout: UI_MS });
  t.regex((await banner.textContent()) ?? '', /Leader unreachable — showing data from \d\d:\d\d:\d\d/);
  t.true((await historyIds(page)).length > 0, 'the last data stays on screen');
  await shot(page, '05-leader-killed');

  const during = await eventually(
    async () => {
      const shown = await onStandby.locator('#leader-banner').isVisible();
      const role = await onStandby.textContent('#cluster-role');
      return shown || role !== 'standby' ? { shown, role } : undefined;
    },
    { timeoutMs: FAILOVER_MS, pollMs: 50, what: 'the standby page noticing the leader gone' },
  );
  t.log(`standby page during the fail-over: banner ${during.shown ? 'shown' : 'not shown'}, role ${during.role}`);
  t.true((await historyIds(onStandby)).length > 0, 'the last data stays on screen');
  await shot(onStandby, '06-standby-during-failover');

  await eventually(async () => (await onStandby.textContent('#cluster-role')) === 'leader', {
    timeoutMs: FAILOVER_MS,
    what: 'the standby page showing it leads',
  });
  t.is(await onStandby.textContent('#cluster-leader'), `this coordinator (${standby.advertise})`);
  await eventually(async () => Math.max(...(await historyIds(onStandby))) > lastBeforeKill, {
    timeoutMs: FAILOVER_MS,
    what: `a checkpoint of the new leader after ${lastBeforeKill}`,
  });
  await onStandby.locator('#leader-banner').waitFor({ state: 'hidden', timeout: UI_MS });
  await shot(onStandby, '07-new-leader');
  t.deepEqual([...errors, ...standbyErrors], [], 'no uncaught errors in the pages');
});
