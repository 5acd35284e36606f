/**
 * The plot of `bench/results/latency.svg`: checkpoint latency p50 and p99
 * against the task count, beside Floor(N) and the target (1.5 × Floor up
 * to 1024 tasks, 2 × above), both axes logarithmic. Plain SVG, no library.
 */
import { floorModel, targetFactor } from './floor-model.js';
import type { Row } from './row.js';

const WIDTH = 780;
const HEIGHT = 460;
const MARGIN = { left: 70, right: 230, top: 44, bottom: 56 };
const LATENCY_ID = /^checkpoint\.latency\.n(\d+)\.(p50|p99)$/;
const FLOOR_ID = /^checkpoint\.floor\.n(\d+)$/;

interface Point {
  tasks: number;
  ms: number;
}

interface Series {
  label: string;
  points: Point[];
  color: string;
  dash?: string;
  marker?: 'filled' | 'hollow';
}

interface Scale {
  x(tasks: number): number;
  y(ms: number): number;
  tasks: [number, number];
  ms: [number, number];
}

/** The SVG document, or undefined when `rows` have no checkpoint latency. */
export function latencyPlot(rows: readonly Row[]): string | undefined {
  const p50 = pointsOf(rows, LATENCY_ID, 'p50');
  const p99 = pointsOf(rows, LATENCY_ID, 'p99');
  if (p50.length === 0) return undefined;
  const floor = floorCurve(rows, p50);
  const series: Series[] = [
    { label: 'target', points: targetCurve(floor), color: '#c0392b', dash: '6 4' },
    { label: 'Floor(N)', points: floor, color: '#7f8c8d' },
    { label: 'p99', points: p99, color: '#2e86c1', dash: '3 3', marker: 'hollow' },
    { label: 'p50', points: p50, color: '#1b4f72', marker: 'filled' },
  ];
  const scale = scaleFor(series.flatMap((s) => s.points));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2 - MARGIN.right / 2}" y="24" text-anchor="middle" font-size="15">Checkpoint latency against task count</text>`,
    ...axes(scale),
    ...series.map((s) => seriesSvg(s, scale)),
    ...legend(series),
    '</svg>',
    '',
  ].join('\n');
}

function pointsOf(rows: readonly Row[], pattern: RegExp, which?: string): Point[] {
  const points: Point[] = [];
  for (const row of rows) {
    const match = pattern.exec(row.id);
    if (match === null || (which !== undefined && match[2] !== which)) continue;
    points.push({ tasks: Number(match[1]), ms: row.value });
  }
  return points.sort((a, b) => a.tasks - b.tasks);
}

/** Floor(N) sampled finely from the floor rows; else the per-N floor rows the latency scenario wrote. */
function floorCurve(rows: readonly Row[], measured: Point[]): Point[] {
  const maxTasks = measured[measured.length - 1]?.tasks ?? 1;
  try {
    const model = floorModel(new Map(rows.map((r) => [r.id, r])));
    const steps = 96;
    return Array.from({ length: steps + 1 }, (_, i) => {
      const tasks = Math.pow(maxTasks, i / steps);
      return { tasks, ms: model.floorMs(tasks) };
    });
  } catch {
    return pointsOf(rows, FLOOR_ID);
  }
}

/** The target over the floor curve; the factor steps up above 1024 tasks, so the curve breaks there. */
function targetCurve(floor: Point[]): Point[] {
  return floor.map((p) => ({ tasks: p.tasks, ms: targetFactor(p.tasks) * p.ms }));
}

function scaleFor(points: Point[]): Scale {
  const tasks: [number, number] = [1, Math.max(2, ...points.map((p) => p.tasks))];
  const values = points.map((p) => p.ms).filter((ms) => ms > 0);
  const ms: [number, number] = [
    Math.pow(10, Math.floor(Math.log10(Math.min(...values)))),
    Math.pow(10, Math.ceil(Math.log10(Math.max(...values)))),
  ];
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const fraction = (v: number, [lo, hi]: [number, number]): number => Math.log(v / lo) / Math.log(hi / lo);
  return {
    tasks,
    ms,
    x: (t) => MARGIN.left + fraction(Math.max(t, tasks[0]), tasks) * plotWidth,
    y: (v) => MARGIN.top + (1 - fraction(Math.max(v, ms[0]), ms)) * plotHeight,
  };
}

function axes(scale: Scale): string[] {
  const [left, right] = [MARGIN.left, WIDTH - MARGIN.right];
  const [top, bottom] = [MARGIN.top, HEIGHT - MARGIN.bottom];
  const out = [
    `<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#333"/>`,
  ];
  for (let t = 1; t <= scale.tasks[1]; t *= 4) {
    const x = scale.x(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  for (const ms of msTicks(scale.ms)) {
    const y = scale.y(ms).toFixed(1);
    out.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${ms}</text>`);
  }
  out.push(`<text x="${(left + right) / 2}" y="${HEIGHT - 14}" text-anchor="middle">tasks N (log scale)</text>`);
  out.push(
    `<text x="18" y="${(top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(top + bottom) / 2})">` +
      `trigger to commit, ms (log scale)</text>`,
  );
  return out;
}

/** 1, 2, 5 × powers of ten within the range. */
function msTicks([lo, hi]: [number, number]): number[] {
  const ticks: number[] = [];
  for (let decade = lo; decade <= hi; decade *= 10) {
    for (const m of [1, 2, 5]) if (m * decade <= hi) ticks.push(Number((m * decade).toPrecision(3)));
  }
  return ticks;
}

function seriesSvg(series: Series, scale: Scale): string {
  const segments = series.label === 'target' ? splitAtFactorChange(series.points) : [series.points];
  const dash = series.dash === undefined ? '' : ` stroke-dasharray="${series.dash}"`;
  const lines = segments.map(
    (points) =>
      `<polyline fill="none" stroke="${series.color}" stroke-width="2"${dash} points="${points
        .map((p) => `${scale.x(p.tasks).toFixed(1)},${scale.y(p.ms).toFixed(1)}`)
        .join(' ')}"/>`,
  );
  const markers =
    series.marker === undefined
      ? []
      : series.points.map((p) => {
          const fill = series.marker === 'filled' ? series.color : 'white';
          return `<circle cx="${scale.x(p.tasks).toFixed(1)}" cy="${scale.y(p.ms).toFixed(1)}" r="4" fill="${fill}" stroke="${series.color}" stroke-width="1.5"><title>${series.label} N=${p.tasks}: ${p.ms} ms</title></circle>`;
        });
  return [...lines, ...markers].join('\n');
}

function splitAtFactorChange(points: Point[]): Point[][] {
  const segments: Point[][] = [];
  for (const p of points) {
    const last = segments[segments.length - 1];
    const previous = last?.[last.length - 1];
    if (last !== undefined && previous !== undefined && targetFactor(previous.tasks) === targetFactor(p.tasks)) {
      last.push(p);
    } else segments.push([p]);
  }
  return segments;
}

function legend(series: Series[]): string[] {
  const labels: Record<string, string> = {
    p50: 'p50',
    p99: 'p99',
    'Floor(N)': 'Floor(N)',
    target: 'target: 1.5× Floor, 2× > 1024',
  };
  const x = WIDTH - MARGIN.right + 16;
  return [...series].reverse().map((s, i) => {
    const y = MARGIN.top + 12 + i * 22;
    const dash = s.dash === undefined ? '' : ` stroke-dasharray="${s.dash}"`;
    return (
      `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>` +
      `<text x="${x + 30}" y="${y}" dominant-baseline="middle">${escapeXml(labels[s.label] ?? s.label)}</text>`
    );
  });
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
