/**
 * The plot of `bench/results/latency.svg`: checkpoint latency p50 and p99
 * against the task count, beside the floor measured in the same rounds and
 * the targets (1.5 × floor p50, 3 × floor p99), both axes logarithmic.
 * Plain SVG, no library.
 */
import type { Row } from './row.js';

const WIDTH = 780;
const HEIGHT = 460;
const MARGIN = { left: 70, right: 230, top: 44, bottom: 56 };
const LATENCY_ID = /^checkpoint\.latency\.n(\d+)\.(p50|p99)$/;
const FLOOR_ID = /^checkpoint\.floor\.n(\d+)\.(p50|p99)$/;
/** The targets: latency p50 ≤ 1.5 × floor p50, p99 ≤ 3 × floor p99. */
const FACTORS = { p50: 1.5, p99: 3 } as const;

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
  const floor50 = pointsOf(rows, FLOOR_ID, 'p50');
  const floor99 = pointsOf(rows, FLOOR_ID, 'p99');
  const series: Series[] = [
    { label: 'target p99', points: scaled(floor99, FACTORS.p99), color: '#e59866', dash: '6 4' },
    { label: 'target p50', points: scaled(floor50, FACTORS.p50), color: '#c0392b', dash: '6 4' },
    { label: 'floor p99', points: floor99, color: '#bdc3c7', dash: '3 3' },
    { label: 'floor p50', points: floor50, color: '#7f8c8d' },
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

/** `points` times `factor`. */
function scaled(points: Point[], factor: number): Point[] {
  return points.map((p) => ({ tasks: p.tasks, ms: factor * p.ms }));
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
  const dash = series.dash === undefined ? '' : ` stroke-dasharray="${series.dash}"`;
  const lines = [
    `<polyline fill="none" stroke="${series.color}" stroke-width="2"${dash} points="${series.points
      .map((p) => `${scale.x(p.tasks).toFixed(1)},${scale.y(p.ms).toFixed(1)}`)
      .join(' ')}"/>`,
  ];
  const markers =
    series.marker === undefined
      ? []
      : series.points.map((p) => {
          const fill = series.marker === 'filled' ? series.color : 'white';
          return `<circle cx="${scale.x(p.tasks).toFixed(1)}" cy="${scale.y(p.ms).toFixed(1)}" r="4" fill="${fill}" stroke="${series.color}" stroke-width="1.5"><title>${series.label} N=${p.tasks}: ${p.ms} ms</title></circle>`;
        });
  return [...lines, ...markers].join('\n');
}

function legend(series: Series[]): string[] {
  const labels: Record<string, string> = {
    'target p50': `target p50: ${FACTORS.p50}× floor p50`,
    'target p99': `target p99: ${FACTORS.p99}× floor p99`,
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
