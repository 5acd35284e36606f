/**
 * `#/jobs/<id>/checkpoints/<cid>`: one checkpoint's figures and a table of
 * its tasks, sortable by any column (the slowest end-to-end first at first).
 */
import { getJson, jobPath } from './api.js';
import { definitions, h, routeHref } from './dom.js';
import { bytes, count, duration, NONE, timestamp, word } from './format.js';
import { statusBadge } from './entry.js';

/** The task table's columns: `key` is the API field, `numeric` sorts and aligns as a number. */
const TASK_COLUMNS = [
  { key: 'task_id', label: 'Task' },
  { key: 'status', label: 'Status', format: (v) => statusBadge(v) },
  { key: 'ack_timestamp', label: 'Acknowledged', numeric: true, format: timestamp },
  {
    key: 'end_to_end_duration',
    label: 'End-to-end',
    numeric: true,
    format: (v, task) => (task.status === 'PENDING' ? 'pending' : duration(v)),
  },
  { key: 'start_delay', label: 'Start delay', numeric: true, format: duration },
  { key: 'alignment_duration', label: 'Alignment', numeric: true, format: duration },
  { key: 'sync_duration', label: 'Sync', numeric: true, format: duration },
  { key: 'async_duration', label: 'Async', numeric: true, format: duration },
  { key: 'state_size', label: 'State size', numeric: true, format: bytes },
  { key: 'checkpointed_size', label: 'Checkpointed size', numeric: true, format: bytes },
  { key: 'in_flight_size', label: 'In-flight', numeric: true, format: bytes },
  { key: 'processed_records', label: 'Records', numeric: true, format: count },
  { key: 'snapshot_type', label: 'Snapshot', format: word },
];

/** The sort a task table starts with. */
export const DEFAULT_TASK_SORT = Object.freeze({ key: 'end_to_end_duration', dir: 'desc' });

/** The page of checkpoint `checkpointId` of job `jobId`. */
export function checkpointView(jobId, checkpointId) {
  let sort = { ...DEFAULT_TASK_SORT };
  let tasks = [];
  let facts;
  let taskSection;
  const sortBy = (key) => {
    sort = sort.key === key ? { key, dir: sort.dir === 'asc' ? 'desc' : 'asc' } : { key, dir: 'asc' };
    taskSection.replaceChildren(h('h2', {}, 'Tasks'), taskTable(tasks, sort, sortBy));
  };
  return {
    title: `Checkpoint ${checkpointId} of ${jobId}`,
    jobId,
    mount(main) {
      main.append(
        h(
          'h1',
          {},
          h('a', { href: '#/' }, 'Jobs'),
          ' / ',
          h('a', { href: routeHref('jobs', jobId), id: 'job-link' }, jobId),
          ' / ',
          h('span', { id: 'checkpoint-id' }, `checkpoint ${checkpointId}`),
        ),
      );
      facts = h('section', { id: 'checkpoint-facts' }, h('p', { class: 'muted' }, 'Loading…'));
      taskSection = h('section', { id: 'checkpoint-tasks' });
      main.append(facts, taskSection);
    },
    async refresh(signal) {
      const entry = await getJson(jobPath(jobId, `/checkpoints/details/${checkpointId}`), signal);
      tasks = Array.isArray(entry.tasks) ? entry.tasks : [];
      facts.replaceChildren(entryFacts(entry));
      facts.dataset.status = entry.status;
      taskSection.replaceChildren(h('h2', {}, 'Tasks'), taskTable(tasks, sort, sortBy));
    },
  };
}

function entryFacts(e) {
  const failed = e.status === 'FAILED';
  return definitions({ id: 'entry-facts', class: 'facts' }, [
    ['Status', statusBadge(e.status)],
    ['Type', `${word(e.checkpoint_type)}${e.is_savepoint ? ' (savepoint)' : ''}${e.manual ? ', manual' : ''}`],
    ['Epoch', String(e.epoch)],
    ['Acknowledged', `${e.num_acknowledged_subtasks}/${e.num_subtasks}`],
    ['Triggered', timestamp(e.trigger_timestamp)],
    ['Latest acknowledgement', timestamp(e.latest_ack_timestamp)],
    ['End-to-end duration', e.status === 'IN_PROGRESS' ? 'running' : duration(e.end_to_end_duration)],
    ['State size', bytes(e.state_size)],
    ['Checkpointed size', bytes(e.checkpointed_size)],
    ['Max alignment', duration(e.max_alignment)],
    ['Max snapshot', duration(e.max_snapshot)],
    ['In-flight records', inFlightText(Array.isArray(e.tasks) ? e.tasks : [])],
    ['Manifest', bytes(e.manifest_bytes)],
    ...(failed
      ? [
          ['Failed at', timestamp(e.failure_timestamp)],
          ['Abort reason', e.abort_reason ? word(e.abort_reason) : NONE],
          ['Failure message', e.failure_message || NONE],
        ]
      : []),
  ]);
}

/**
 * Whether the checkpoint's pieces hold in-flight records (an unaligned
 * snapshot, or an aligned one that timed out): the tasks that stored any,
 * and their bytes. Unknown when the statistics no longer keep the tasks.
 */
function inFlightText(tasks) {
  if (tasks.length === 0) return h('span', { id: 'in-flight', dataset: { tasks: '' } }, NONE);
  const holding = tasks.filter((t) => Number(t.in_flight_size) > 0);
  const total = holding.reduce((n, t) => n + Number(t.in_flight_size), 0);
  const text =
    holding.length === 0
      ? 'none'
      : `${bytes(total)} in ${holding.length} of ${tasks.length} tasks (${holding.map((t) => t.task_id).join(', ')})`;
  return h('span', { id: 'in-flight', dataset: { tasks: String(holding.length) } }, text);
}

/** The sort key of `task` for column `key`: a pending task is the slowest end-to-end. */
function sortValue(task, column) {
  const v = task[column.key];
  if (!column.numeric) return String(v ?? '');
  if (column.key === 'end_to_end_duration' && task.status === 'PENDING') return Infinity;
  const n = Number(v);
  return Number.isFinite(n) ? n : -Infinity;
}

/** `tasks` sorted by `sort` (`{ key, dir }`), ties by task id. */
export function sortTasks(tasks, sort) {
  const column = TASK_COLUMNS.find((c) => c.key === sort.key) ?? TASK_COLUMNS[0];
  const sign = sort.dir === 'desc' ? -1 : 1;
  return [...tasks].sort((a, b) => {
    const x = sortValue(a, column);
    const y = sortValue(b, column);
    const order = column.numeric ? (x === y ? 0 : x < y ? -1 : 1) : x.localeCompare(y);
    return order !== 0 ? sign * order : String(a.task_id).localeCompare(String(b.task_id));
  });
}

function taskTable(tasks, sort, sortBy) {
  if (tasks.length === 0) return h('p', { id: 'tasks-empty', class: 'muted' }, 'No tasks.');
  const header = TASK_COLUMNS.map((c) => {
    const active = c.key === sort.key;
    return h(
      'th',
      {
        class: ['sortable', c.numeric ? 'num' : null, active ? `sorted-${sort.dir}` : null].filter(Boolean).join(' '),
        dataset: { sort: c.key },
        'aria-sort': active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none',
        tabindex: 0,
        title: `Sort by ${c.label.toLowerCase()}`,
        onclick: () => sortBy(c.key),
        onkeydown: (ev) => {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            sortBy(c.key);
          }
        },
      },
      c.label,
    );
  });
  const rows = sortTasks(tasks, sort).map((t) =>
    h(
      'tr',
      { dataset: { taskId: String(t.task_id), status: t.status } },
      ...TASK_COLUMNS.map((c) =>
        h(
          'td',
          { class: c.numeric ? 'num' : null, dataset: { key: c.key, value: String(t[c.key] ?? '') } },
          c.format ? c.format(t[c.key], t) : String(t[c.key] ?? ''),
        ),
      ),
    ),
  );
  return h(
    'table',
    { id: 'tasks-table', class: 'grid', dataset: { sortKey: sort.key, sortDir: sort.dir } },
    h('thead', {}, h('tr', {}, ...header)),
    h('tbody', {}, ...rows),
  );
}
