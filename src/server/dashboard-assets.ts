/**
 * The dashboard's static files: `GET /` (its page), `/static/<file>` (from
 * `src/dashboard/`, or `dashboard/` beside the compiled server) and
 * `/static/uplot/<file>` (uPlot's browser build from `node_modules`). Only
 * plain file names are served, read once and kept; nothing else on disk
 * can be named.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.(html|js|css|svg)$/;

/** uPlot's files the dashboard may load. */
const UPLOT_FILES = new Set(['uPlot.iife.min.js', 'uPlot.min.css']);

/** A file to send. */
export interface Asset {
  type: string;
  body: Buffer;
}

/**
 * The directory of the dashboard's files: `src/dashboard/` beside this
 * module (in the sources, or copied into a package's `dist/src/` by its
 * build), else the sources' own when this runs compiled from `dist/src/`.
 */
function dashboardDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', 'dashboard'), join(here, '..', '..', '..', 'src', 'dashboard')].find((d) =>
    existsSync(join(d, 'index.html')),
  );
}

function uplotDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  } catch {
    return undefined;
  }
}

/** Reads and caches the dashboard's files. */
export class DashboardAssets {
  readonly #dir = dashboardDir();
  readonly #uplot = uplotDir();
  readonly #cache = new Map<string, Promise<Asset | undefined>>();

  /** The asset at `path` (`/`, `/index.html`, `/static/...`); undefined when there is none. */
  get(path: string): Promise<Asset | undefined> {
    const file = this.#file(path);
    if (file === undefined) return Promise.resolve(undefined);
    let asset = this.#cache.get(file);
    if (asset === undefined) {
      asset = readFile(file).then(
        (body) => ({ type: TYPES[file.slice(file.lastIndexOf('.') + 1)] ?? 'application/octet-stream', body }),
        () => undefined,
      );
      this.#cache.set(file, asset);
    }
    return asset;
  }

  #file(path: string): string | undefined {
    if (path === '/' || path === '/index.html') return this.#dir && join(this.#dir, 'index.html');
    const uplot = /^\/static\/uplot\/([^/]+)$/.exec(path)?.[1];
    if (uplot !== undefined) return UPLOT_FILES.has(uplot) && this.#uplot ? join(this.#uplot, uplot) : undefined;
    const name = /^\/static\/([^/]+)$/.exec(path)?.[1];
    return name !== undefined && FILE_NAME.test(name) && this.#dir ? join(this.#dir, name) : undefined;
  }
}
