/**
 * The dashboard's shell: hash routing, the header with this coordinator's
 * role and its leader (with job groups: their number and each group's
 * leader), the banner when the leader is out of reach, and the
 * refresh loop (cluster every 2 s; the page's data on each event of the
 * live stream, debounced, and when it is stale). A failed refresh leaves
 * the last data on screen: the banner says how old it is.
 */
import { ApiError, getJson, isAbort } from './api.js';
import { checkpointView } from './checkpoint-view.js';
import { h } from './dom.js';
import { clock } from './format.js';
import { jobView } from './job-view.js';
import { jobsView } from './jobs-view.js';
import { LiveEvents } from './live-events.js';

/** How often the header asks for the cluster. */
const CLUSTER_POLL_MS = 2000;
/** Events arriving closer together than this cause one refresh. */
const REFRESH_DEBOUNCE_MS = 300;
/** Data older than this is fetched again even without an event (ages move, an event may be lost). */
const STALE_MS = 10_000;
/** A stream down for longer than this counts as the leader out of reach. */
const STREAM_GRACE_MS = 3000;

const main = document.getElementById('main');
const banner = document.getElementById('leader-banner');
const pageError = document.getElementById('page-error');

/** Why the leader is out of reach, by source ('cluster', 'data', 'stream'); empty while it is not. */
const problems = new Map();
let lastDataAt = 0;
let lastFailed = false;
let cluster = null;
let view = null;
let viewAbort = new AbortController();
let refreshing = null;
let refreshAgain = false;
let debounce = null;
let streamGrace = null;

const live = new LiveEvents({
  onCheckpoint: (event) => {
    if (view?.jobId === null || event.job_id === view?.jobId) scheduleRefresh();
  },
  onCluster: (c) => showCluster(c),
  onState: (open, why) => {
    document.body.dataset.live = open ? 'open' : 'down';
    clearTimeout(streamGrace);
    if (open) {
      problems.delete('stream');
      showBanner();
      scheduleRefresh(); // what happened while the stream was down
      return;
    }
    // The server ends a stream when the role or the leader changes, and the browser reconnects.
    streamGrace = setTimeout(() => {
      problems.set('stream', why);
      showBanner();
    }, STREAM_GRACE_MS);
  },
});

/** The view for the current location hash. */
function route() {
  const parts = location.hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  if (parts.length === 0) return jobsView();
  if (parts[0] === 'jobs' && parts.length === 2) return jobView(parts[1]);
  if (parts[0] === 'jobs' && parts.length === 4 && parts[2] === 'checkpoints' && /^\d+$/.test(parts[3])) {
    return checkpointView(parts[1], Number(parts[3]));
  }
  return null;
}

function navigate() {
  viewAbort.abort();
  viewAbort = new AbortController();
  view?.destroy?.();
  view = route();
  main.replaceChildren();
  setPageError(null);
  if (view === null) {
    main.append(h('p', { class: 'notice' }, 'No such page. ', h('a', { href: '#/' }, 'Back to the jobs.')));
    live.close();
    clearTimeout(streamGrace);
    problems.delete('stream');
    showBanner();
    return;
  }
  document.title = `${view.title} · ckpt`;
  view.mount(main);
  lastDataAt = 0;
  live.open(view.jobId);
  void refresh();
}

/** Fetches the page's data again; a call during a refresh runs once more after it. */
async function refresh() {
  if (refreshing !== null) {
    refreshAgain = true;
    return refreshing;
  }
  const current = view;
  const signal = viewAbort.signal;
  refreshing = (async () => {
    try {
      await current.refresh(signal);
      if (current !== view) return;
      lastDataAt = Date.now();
      lastFailed = false;
      problems.delete('data');
      setPageError(null);
    } catch (err) {
      if (isAbort(err) || current !== view) return;
      lastFailed = true;
      if (err instanceof ApiError && err.unreachable) problems.set('data', err.message);
      else {
        problems.delete('data');
        setPageError(err instanceof Error ? err.message : String(err));
      }
    }
    showBanner();
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
  if (refreshAgain) {
    refreshAgain = false;
    return refresh();
  }
}

function scheduleRefresh() {
  clearTimeout(debounce);
  debounce = setTimeout(() => void refresh(), REFRESH_DEBOUNCE_MS);
}

async function pollCluster() {
  try {
    showCluster(await getJson('/cluster'));
    problems.delete('cluster');
  } catch (err) {
    problems.set('cluster', err instanceof Error ? err.message : String(err));
  }
  showBanner();
  const stale = lastFailed || !live.isOpen || Date.now() - lastDataAt > STALE_MS;
  if (view !== null && stale) void refresh();
}

function showCluster(c) {
  const leaderChanged = cluster !== null && cluster.leader !== c.leader;
  cluster = c;
  const header = document.getElementById('cluster');
  header.dataset.role = c.role;
  header.dataset.leader = c.leader ?? '';
  document.getElementById('cluster-self').textContent = c.self;
  document.getElementById('cluster-role').textContent = c.role;
  document.getElementById('cluster-leader').textContent =
    c.role === 'leader' ? `this coordinator (${c.self})` : (c.leader ?? 'none known');
  document.getElementById('cluster-version').textContent = c.version ? `v${c.version}` : '';
  document.getElementById('cluster-detail').textContent = c.detail ?? '';
  const groups = jobGroupsOf(c);
  showJobGroups(c, groups);
  const leaderless = groups === null ? [] : groups.filter((g) => g.leader === null).map((g) => g.group);
  if (groups === null && c.role !== 'leader' && c.leader === null) problems.set('leader', 'no leader is known');
  else if (leaderless.length > 0) problems.set('leader', `no leader is known of job groups ${leaderless.join(', ')}`);
  else problems.delete('leader');
  // A standby's stream comes from the leader: a new leader calls for a new stream. (With job groups the
  // server's stream follows each group's leader itself.)
  if (leaderChanged && groups === null && view !== null) live.open(view.jobId);
  showBanner();
}

/** The cluster's job groups as `{ group, leader }` (leader null when none is known); null with one group. */
function jobGroupsOf(c) {
  if (!Array.isArray(c.job_groups)) return null;
  return c.job_groups
    .filter((g) => typeof g === 'object' && g !== null && Number.isInteger(g.group))
    .map((g) => ({ group: g.group, leader: typeof g.leader === 'string' ? g.leader : null }));
}

/** The number of job groups and each group's leader; with one group, the single leader instead. */
function showJobGroups(c, groups) {
  const item = document.getElementById('cluster-groups');
  document.getElementById('cluster-leader-item').hidden = groups !== null;
  item.hidden = groups === null;
  if (groups === null) return;
  document.getElementById('cluster-group-count').textContent = String(groups.length);
  document
    .getElementById('cluster-group-leaders')
    .replaceChildren(
      ...groups.map((g) =>
        h(
          'li',
          { dataset: { group: String(g.group), leader: g.leader ?? '', self: String(g.leader === c.self) } },
          h('span', { class: 'group-number' }, `group ${g.group}`),
          h('span', { class: 'group-leader' }, g.leader === null ? 'no leader known' : g.leader),
          g.leader === c.self ? h('span', { class: 'muted' }, ' (this coordinator)') : null,
        ),
      ),
    );
}

function showBanner() {
  // The header shows what this coordinator last said about itself.
  document.getElementById('cluster').dataset.stale = String(problems.has('cluster'));
  if (problems.size === 0) {
    banner.hidden = true;
    return;
  }
  const since = lastDataAt > 0 ? `showing data from ${clock(lastDataAt)}` : 'no data yet';
  banner.hidden = false;
  banner.replaceChildren(
    h('strong', { class: 'banner-title' }, `Leader unreachable — ${since}`),
    h('span', { class: 'banner-detail' }, [...new Set(problems.values())].join('; ')),
  );
}

function setPageError(message) {
  pageError.hidden = message === null;
  pageError.textContent = message ?? '';
}

window.addEventListener('hashchange', navigate);
setInterval(() => void pollCluster(), CLUSTER_POLL_MS);
void pollCluster();
navigate();
