/**
 * `#/jobs/<id>`: a job's state, its checkpoint counts, summary statistics,
 * charts of durations and sizes, its checkpoint policy and its history.
 */
import { getJson, jobPath } from './api.js';
import { historyChart } from './charts.js';
import { definitions, h, row, table } from './dom.js';
import { bytes, count, duration, NONE, timestamp, word } from './format.js';
import { checkpointLink, statusBadge } from './entry.js';

const SUMMARY_FIGURES = [
  { key: 'end_to_end_duration', label: 'End-to-end duration', format: duration },
  { key: 'checkpointed_size', label: 'Checkpointed size', format: bytes },
  { key: 'state_size', label: 'State size', format: bytes },
  { key: 'alignment_duration', label: 'Alignment', format: duration },
];
const SUMMARY_COLUMNS = [
  { label: '' },
  ...['count', 'min', 'avg', 'p50', 'p90', 'p99', 'max'].map((k) => ({ key: k, label: k, numeric: true })),
];

const HISTORY_COLUMNS = [
  { label: 'ID' },
  { label: 'Status' },
  { label: 'Type' },
  { label: 'Acknowledged', numeric: true },
  { label: 'Triggered' },
  { label: 'Latest ack' },
  { label: 'Duration', numeric: true },
  { label: 'Checkpointed size', numeric: true },
  { label: 'State size', numeric: true },
  { label: 'Abort reason' },
];

/** The page of job `jobId`. */
export function jobView(jobId) {
  const s = {};
  const charts = [];
  return {
    title: `Job ${jobId}`,
    jobId,
    mount(main) {
      s.head = h('h1', {}, h('a', { href: '#/' }, 'Jobs'), ' / ', h('span', { id: 'job-id' }, jobId));
      s.overview = h('section', { id: 'job-overview' });
      s.counts = h('section', { id: 'checkpoint-counts', class: 'cards' });
      s.summary = h('section', { id: 'checkpoint-summary' });
      s.charts = h('section', { id: 'charts', class: 'charts' });
      s.config = h('section', { id: 'checkpoint-config' });
      s.history = h('section', { id: 'checkpoint-history' }, h('p', { class: 'muted' }, 'Loading…'));
      const durationChart = h('div', { id: 'chart-duration', class: 'chart' });
      const sizeChart = h('div', { id: 'chart-sizes', class: 'chart' });
      s.charts.append(durationChart, sizeChart);
      main.append(s.head, s.overview, s.counts, s.summary, s.charts, s.history, s.config);
      charts.push(
        historyChart(durationChart, {
          title: 'Duration',
          format: duration,
          series: [
            { label: 'end-to-end', value: (e) => e.end_to_end_duration },
            { label: 'max alignment', value: (e) => e.max_alignment },
          ],
        }),
        historyChart(sizeChart, {
          title: 'Sizes',
          format: bytes,
          series: [
            { label: 'checkpointed', value: (e) => e.checkpointed_size },
            { label: 'state', value: (e) => e.state_size },
          ],
        }),
      );
    },
    async refresh(signal) {
      const [job, stats, config] = await Promise.all([
        getJson(jobPath(jobId), signal),
        getJson(jobPath(jobId, '/checkpoints'), signal),
        getJson(jobPath(jobId, '/checkpoints/config'), signal),
      ]);
      s.overview.replaceChildren(overview(job));
      s.counts.replaceChildren(...countCards(stats.counts ?? {}));
      s.summary.replaceChildren(h('h2', {}, 'Summary'), summaryTable(stats.summary ?? {}));
      const history = Array.isArray(stats.history) ? stats.history : [];
      for (const chart of charts) chart.update(history);
      s.history.replaceChildren(h('h2', {}, 'History'), historyTable(jobId, history));
      s.config.replaceChildren(h('h2', {}, 'Checkpoint policy'), policy(config));
    },
    destroy() {
      for (const chart of charts) chart.destroy();
    },
  };
}

function overview(job) {
  return definitions({ id: 'job-facts', class: 'facts' }, [
    ['State', h('span', { id: 'job-state', class: `state state-${String(job.state).toLowerCase()}` }, word(job.state))],
    ['Epoch', String(job.epoch)],
    ['Attempt', job.attempt === null ? NONE : word(job.attempt)],
    ['Tasks ready', `${job.ready_tasks}/${job.tasks} (${job.attached_tasks} attached)`],
    ['Checkpointing', job.checkpointing ? 'yes' : 'no'],
    ['Interval', intervalText(job)],
    ...(job.quarantine_reason ? [['Quarantined', job.quarantine_reason]] : []),
  ]);
}

function intervalText(job) {
  const interval = job.interval_ms > 0 ? duration(job.interval_ms) : 'manual triggers only';
  return job.interval_reason ? `${interval} (${job.interval_reason})` : interval;
}

function countCards(counts) {
  const cards = [
    ['total', 'Triggered'],
    ['in_progress', 'In progress'],
    ['completed', 'Completed'],
    ['failed', 'Failed'],
    ['restored', 'Restored'],
  ];
  return cards.map(([key, label]) =>
    h(
      'div',
      { class: `card card-${key}`, dataset: { count: key } },
      h('span', { class: 'card-value' }, count(counts[key] ?? 0)),
      h('span', { class: 'card-label' }, label),
    ),
  );
}

function summaryTable(summary) {
  const rows = SUMMARY_FIGURES.map(({ key, label, format }) => {
    const d = summary[key] ?? {};
    const none = !(d.count > 0);
    return row({ dataset: { figure: key } }, SUMMARY_COLUMNS, [
      label,
      count(d.count ?? 0),
      ...['min', 'avg', 'p50', 'p90', 'p99', 'max'].map((k) => (none ? NONE : format(d[k]))),
    ]);
  });
  return table({ id: 'summary-table', class: 'grid' }, SUMMARY_COLUMNS, rows);
}

/** The duration of a history row: a failed checkpoint without one shows none. */
function entryDuration(e) {
  if (e.status === 'IN_PROGRESS') return 'running';
  return e.status === 'FAILED' && !(e.end_to_end_duration > 0) ? NONE : duration(e.end_to_end_duration);
}

function historyTable(jobId, history) {
  if (history.length === 0) return h('p', { id: 'history-empty', class: 'muted' }, 'No checkpoints yet.');
  const rows = history.map((e) =>
    row({ dataset: { checkpointId: String(e.id), status: e.status } }, HISTORY_COLUMNS, [
      checkpointLink(jobId, e.id),
      statusBadge(e.status),
      `${word(e.checkpoint_type)}${e.manual ? ' (manual)' : ''}`,
      `${e.num_acknowledged_subtasks}/${e.num_subtasks}`,
      timestamp(e.trigger_timestamp),
      timestamp(e.latest_ack_timestamp),
      entryDuration(e),
      bytes(e.checkpointed_size),
      bytes(e.state_size),
      e.abort_reason ? h('span', { title: e.failure_message || null }, word(e.abort_reason)) : '',
    ]),
  );
  return table({ id: 'history-table', class: 'grid' }, HISTORY_COLUMNS, rows);
}

const POLICY = [
  ['mode', 'Mode', word],
  ['interval', 'Interval', duration],
  ['interval_in_force', 'Interval in force', duration],
  ['interval_reason', 'Why this interval', String],
  ['timeout', 'Timeout', duration],
  ['min_pause', 'Minimum pause', duration],
  ['max_concurrent', 'Maximum concurrent', String],
  ['tolerable_failed_checkpoints', 'Tolerable failed checkpoints', (n) => (n < 0 ? 'unlimited' : String(n))],
  ['retained', 'Retained', String],
  ['full_every', 'Full checkpoint every', String],
  ['compression', 'Compression', String],
  ['snapshot_timeout', 'Snapshot timeout', duration],
  ['task_stall_timeout', 'Task stall timeout', duration],
  ['aligned_checkpoint_timeout', 'Aligned checkpoint timeout', alignedTimeout],
];

/** A checkpoint that waited this long to align is taken unaligned; 0: it always aligns. */
function alignedTimeout(ms) {
  return ms > 0 ? duration(ms) : 'off (always aligns)';
}

function policy(config) {
  const shown = POLICY.filter(([key]) => config[key] !== undefined && config[key] !== null && config[key] !== '');
  // Only aligned checkpoints wait for alignment: other modes have no such timeout.
  const pairs = shown
    .filter(([key]) => key !== 'aligned_checkpoint_timeout' || config.mode === 'ALIGNED')
    .map(([key, label, format]) => [label, format(config[key])]);
  const adaptive = config.adaptive;
  pairs.push([
    'Adaptive interval',
    adaptive && typeof adaptive === 'object'
      ? definitions(
          { class: 'facts nested' },
          Object.entries(adaptive).map(([k, v]) => [word(k), typeof v === 'object' ? JSON.stringify(v) : String(v)]),
        )
      : 'off',
  ]);
  return definitions({ id: 'policy', class: 'facts' }, pairs);
}
