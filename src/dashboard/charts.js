/**
 * Line charts of a job's checkpoint history (uPlot, loaded as the global
 * `uPlot` by index.html): one point per completed checkpoint, at its
 * trigger time. Without uPlot the page says so and goes on.
 */
import { h } from './dom.js';

const HEIGHT = 220;
const COLORS = ['#2f6fd6', '#d9822b', '#3a9a5b', '#a24bc4'];

/**
 * A chart in `container`: `series` are `{ label, value(entry) }`, `format`
 * turns a y value into text. `update(history)` draws the entries (newest
 * first, as the API sends them); `destroy()` removes it.
 */
export function historyChart(container, { title, series, format }) {
  const target = h('div', { class: 'chart-canvas' });
  container.replaceChildren(h('h3', {}, title), target);
  const Plot = window.uPlot;
  if (typeof Plot !== 'function') {
    target.append(h('p', { class: 'muted' }, 'Charts are unavailable (uPlot did not load).'));
    return { update() {}, destroy() {} };
  }
  const width = () => Math.max(240, target.clientWidth || container.clientWidth || 600);
  const plot = new Plot(
    {
      width: width(),
      height: HEIGHT,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [
        { label: 'triggered' },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          points: { show: true, size: 5 },
          value: (_u, v) => (v === null || v === undefined ? '—' : format(v)),
        })),
      ],
      axes: [{}, { size: 84, values: (_u, ticks) => ticks.map((v) => format(v)) }],
    },
    [[], ...series.map(() => [])],
    target,
  );
  const resize = () => plot.setSize({ width: width(), height: HEIGHT });
  window.addEventListener('resize', resize);
  return {
    update(history) {
      const points = history.filter((e) => e.status === 'COMPLETED').reverse();
      points.sort((a, b) => a.trigger_timestamp - b.trigger_timestamp);
      plot.setData([points.map((e) => e.trigger_timestamp / 1000), ...series.map((s) => points.map(s.value))]);
      container.dataset.points = String(points.length);
    },
    destroy() {
      window.removeEventListener('resize', resize);
      plot.destroy();
    },
  };
}
