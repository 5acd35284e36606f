/**
 * The Grafana dashboard in deploy/grafana: its layout is sound, every
 * query names only series a coordinator exposes (with their labels), and
 * promtool accepts every query as PromQL.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CheckpointEvents } from '../../src/coordinator/events.js';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import { CoordinatorMetrics } from '../../src/metrics/coordinator-metrics.js';
import { promtool } from '../helpers/promtool.js';

const DASHBOARD = new URL('../../deploy/grafana/ckpt-dashboard.json', import.meta.url);

interface Panel {
  id?: unknown;
  type?: string;
  title?: string;
  gridPos?: { h?: unknown; w?: unknown; x?: unknown; y?: unknown };
  targets?: { expr?: unknown }[];
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: unknown }[] };
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, those inside rows included. */
function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

function exprs(d: Dashboard): string[] {
  return allPanels(d.panels).flatMap((p) => (p.targets ?? []).map((t) => String(t.expr)));
}

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = ['instance', 'job'];

/**
 * Every series name a coordinator exposes, with its label names: from
 * metrics fed one event of each kind, so that labelled series exist.
 */
async function exposedSeries(): Promise<Map<string, Set<string>>> {
  const metrics = new CoordinatorMetrics({ version: '1' }, () => true);
  const events = new CheckpointEvents();
  metrics.attach(events, () => [{ jobId: 'j', intervalMs: 10_000, sessions: 1 }]);
  const summary = (over: Partial<CheckpointSummary__Output>): CheckpointSummary__Output =>
    ({ jobId: 'j', checkpointId: 1, triggeredAtMs: 1_000, finishedAtMs: 0, ...over }) as CheckpointSummary__Output;
  events.publish(summary({ state: 'CHECKPOINT_STATE_PENDING' }));
  events.publish(summary({ checkpointId: 2, state: 'CHECKPOINT_STATE_PENDING' }));
  events.publish(
    summary({ state: 'CHECKPOINT_STATE_COMPLETED', finishedAtMs: 2_000, persistedBytes: 10, stateSizeBytes: 20 }),
  );
  events.publish(summary({ checkpointId: 2, state: 'CHECKPOINT_STATE_ABORTED', abortReason: 'ABORT_REASON_DECLINED' }));
  events.publishRecovery({ jobId: 'j', epoch: 2, checkpointId: 1 });
  metrics.timings.request('txn', 5, true);
  metrics.timings.acknowledged('j', 1, 100);
  metrics.timings.committed('j', 10);
  metrics.timings.sessionEnded('j', 60_000);
  const series = new Map<string, Set<string>>();
  for (const line of (await metrics.text()).split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (match?.[1] === undefined) continue;
    const labels = series.get(match[1]) ?? new Set<string>();
    for (const [, name] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(name ?? '');
    series.set(match[1], labels);
  }
  return series;
}

/** The expression with Grafana's variables replaced, as Prometheus would get it. */
function substituted(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?job_id(?::\w+)?\}?/g, '.*');
}

test('the dashboard parses, has a Prometheus datasource variable and a job_id variable read from label values', async (t) => {
  const d = await dashboard();
  t.true(d.schemaVersion >= 36 && d.schemaVersion <= 39, 'a Grafana 10 schema');
  const variables = new Map(d.templating.list.map((v) => [v.name, v]));
  t.like(variables.get('datasource'), { type: 'datasource', query: 'prometheus' });
  const jobId = variables.get('job_id');
  t.is(jobId?.type, 'query');
  t.regex(JSON.stringify(jobId?.query), /label_values\(ckpt_[a-z_]+, job_id\)/);
  t.deepEqual(jobId?.datasource, { type: 'prometheus', uid: '${datasource}' });
  for (const panel of allPanels(d.panels).filter((p) => p.type !== 'row')) {
    t.deepEqual((panel as { datasource?: unknown }).datasource, { type: 'prometheus', uid: '${datasource}' });
  }
});

test('every panel has a unique id and a place on the 24-column grid, and the panels do not overlap', async (t) => {
  const panels = allPanels((await dashboard()).panels);
  const ids = panels.map((p) => p.id);
  t.true(
    ids.every((id) => Number.isInteger(id)),
    'integer ids',
  );
  t.is(new Set(ids).size, ids.length, 'unique ids');
  const cells = new Set<string>();
  for (const { title, gridPos: g } of panels) {
    const [h, w, x, y] = [g?.h, g?.w, g?.x, g?.y].map(Number);
    t.true(
      [h, w, x, y].every((n) => Number.isInteger(n) && (n ?? -1) >= 0),
      `gridPos of ${title}`,
    );
    t.true((x ?? 0) + (w ?? 0) <= 24, `${title} fits the grid`);
    for (let row = y ?? 0; row < (y ?? 0) + (h ?? 0); row += 1)
      for (let col = x ?? 0; col < (x ?? 0) + (w ?? 0); col += 1) {
        t.false(cells.has(`${row}:${col}`), `${title} overlaps another panel`);
        cells.add(`${row}:${col}`);
      }
  }
});

test('every query names only series the coordinator exposes, with labels they have', async (t) => {
  const exposed = await exposedSeries();
  const queries = exprs(await dashboard());
  t.true(queries.length > 10);
  for (const expr of queries) {
    const names = [...expr.matchAll(/\b(ckpt_[a-zA-Z0-9_]+)/g)].map((m) => m[1] ?? '');
    t.true(names.length > 0, `${expr} reads a ckpt series`);
    const labels = new Set(TARGET_LABELS);
    for (const name of names) {
      t.true(exposed.has(name), `${name} in ${expr} is exposed`);
      for (const label of exposed.get(name) ?? []) labels.add(label);
    }
    for (const [, selector = ''] of expr.matchAll(/\bckpt_[a-zA-Z0-9_]+\{([^}]*)\}/g))
      for (const [, label] of selector.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g))
        t.true(labels.has(label ?? ''), `${expr} matches on ${label}, a label of its series`);
    for (const [, grouping = ''] of expr.matchAll(/\bby \(([^)]*)\)/g))
      for (const label of grouping.split(',').map((l) => l.trim()))
        t.true(labels.has(label), `${expr} groups by ${label}, a label of its series`);
  }
});

test('promtool accepts every query as PromQL', async (t) => {
  const rules = exprs(await dashboard()).map((expr, i) => ({
    record: `ckpt:dashboard_query_${i}`,
    expr: substituted(expr),
  }));
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'queries.yml');
  // JSON is YAML: one recording rule per query.
  await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }, null, 2));
  const checked = await promtool(['check', 'rules', file]);
  t.true(checked.ok, checked.out);
  t.regex(checked.out, new RegExp(`SUCCESS: ${rules.length} rules found`));
});
