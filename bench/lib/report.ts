/**
 * What `make bench` leaves in `bench/results/`: `summary.json` (the rows),
 * `summary.md` (the same as a Markdown table) and `latency.svg` (the
 * checkpoint latency plot).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { latencyPlot } from './latency-plot.js';
import type { Row } from './row.js';

/** The files written, by name. */
export interface ReportFiles {
  json: string;
  markdown: string;
  /** Undefined when the run measured no checkpoint latency. */
  svg: string | undefined;
}

/** Writes the three files into `dir` (created if missing); a plot without data is removed, not left stale. */
export async function writeReport(dir: string, rows: readonly Row[]): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const files: ReportFiles = {
    json: join(dir, 'summary.json'),
    markdown: join(dir, 'summary.md'),
    svg: join(dir, 'latency.svg'),
  };
  await writeFile(files.json, JSON.stringify(rows, null, 2) + '\n');
  await writeFile(files.markdown, markdownTable(rows));
  const plot = latencyPlot(rows);
  if (plot === undefined) {
    await rm(files.svg!, { force: true });
    files.svg = undefined;
  } else {
    await writeFile(files.svg!, plot);
  }
  return files;
}

/** The rows as a Markdown table: id, value, unit, target, ratio, met, conditions. */
export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    '| id | value | unit | target | ratio | met | conditions |',
    '| --- | ---: | --- | ---: | ---: | --- | --- |',
    ...rows.map((r) =>
      [r.id, r.value, r.unit, r.target ?? '', r.ratio ?? '', metCell(r.met), r.conditions]
        .map((cell) => escapeCell(String(cell)))
        .join(' | '),
    ),
  ];
  return lines.map((line, i) => (i < 2 ? line : `| ${line} |`)).join('\n') + '\n';
}

function metCell(met: boolean | null): string {
  if (met === null) return '';
  return met ? 'yes' : '**no**';
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
