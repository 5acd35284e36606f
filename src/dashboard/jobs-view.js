/**
 * `#/`: every job with its state, epoch, attempt, readiness and its newest
 * completed, failed and restored checkpoints.
 */
import { getJson } from './api.js';
import { h, row, routeHref, table } from './dom.js';
import { age, NONE, word } from './format.js';
import { checkpointLink, finishedAt, failureReason } from './entry.js';

const COLUMNS = [
  { label: 'Job' },
  { label: 'State' },
  { label: 'Epoch', numeric: true },
  { label: 'Attempt' },
  { label: 'Tasks ready', numeric: true },
  { label: 'Latest completed' },
  { label: 'Latest failed' },
  { label: 'Latest restored' },
];

/** The jobs list page. */
export function jobsView() {
  let section;
  return {
    title: 'Jobs',
    jobId: null,
    mount(main) {
      section = h('section', { id: 'jobs' }, h('h1', {}, 'Jobs'), h('p', { class: 'muted' }, 'Loading…'));
      main.append(section);
    },
    async refresh(signal) {
      const { jobs } = await getJson('/jobs', signal);
      const rows = (Array.isArray(jobs) ? jobs : []).map(jobRow);
      section.replaceChildren(
        h('h1', {}, 'Jobs'),
        rows.length === 0
          ? h('p', { id: 'jobs-empty', class: 'muted' }, 'No jobs.')
          : table({ id: 'jobs-table', class: 'grid' }, COLUMNS, rows),
      );
    },
  };
}

function jobRow(job) {
  const latest = job.latest ?? {};
  const { completed, failed, restored } = latest;
  return row({ dataset: { jobId: job.id, state: job.state } }, COLUMNS, [
    h('a', { href: routeHref('jobs', job.id), class: 'job-link' }, job.id),
    h('span', { class: `state state-${String(job.state).toLowerCase()}` }, word(job.state)),
    String(job.epoch),
    job.attempt === null ? NONE : word(job.attempt),
    `${job.ready_tasks}/${job.tasks}`,
    completed
      ? h(
          'span',
          { class: 'latest-completed' },
          checkpointLink(job.id, completed.id),
          ` · ${age(finishedAt(completed))}`,
        )
      : NONE,
    failed
      ? h(
          'span',
          { class: 'latest-failed', title: failed.failure_message || null },
          checkpointLink(job.id, failed.id),
          ` · ${failureReason(failed)}`,
        )
      : NONE,
    restored
      ? h(
          'span',
          { class: 'latest-restored' },
          checkpointLink(job.id, restored.checkpoint_id),
          ` (epoch ${restored.epoch})`,
        )
      : NONE,
  ]);
}
