/**
 * The HTTP port of a coordinator process: the dashboard, its JSON API,
 * Prometheus metrics and health.
 *
 * - `GET /`, `/static/…`: the dashboard (`dashboard-assets.ts`).
 * - `GET /api/v1/…`: its JSON and events (`dashboard-api.ts`).
 * - `GET /metrics`: the process's metrics in Prometheus's text format.
 * - `GET /healthz`: 200 while the process runs (liveness).
 * - `GET /readyz`: 200 while it can serve: it leads, or it is a standby
 *   that knows the leader to send callers to; 503 otherwise (starting,
 *   taking over, stopping, no leader known), with why.
 *
 * Anything else is 404 (405 for another method on a known path); a request
 * never ends the process. Bodies are not read.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import { sendJson, type DashboardApi } from './dashboard-api.js';
import type { DashboardAssets } from './dashboard-assets.js';

/** Whether the process can serve now, and why not. */
export interface Readiness {
  ready: boolean;
  /** Said in the body: "leading", "standby; the leader is …", or why it is not ready. */
  detail: string;
}

/** What the HTTP server serves. */
export interface HttpServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** The metrics text and its content type. */
  metrics: () => Promise<string>;
  metricsContentType: string;
  readiness: () => Readiness;
  /** The dashboard's API; without it, `/api/v1/` is 404. */
  api?: DashboardApi;
  /** The dashboard's files; without them, `/` is 404. */
  assets?: DashboardAssets;
  logger: Logger;
}

/** A running HTTP server. */
export interface CoordinatorHttpServer {
  /** host:port with the port actually bound. */
  readonly address: string;
  /** Stops accepting connections and ends open ones. */
  close(): Promise<void>;
}

/** Starts the server; rejects with a `CkptError` (UNAVAILABLE) when the address cannot be bound. */
export async function startHttpServer(options: HttpServerOptions): Promise<CoordinatorHttpServer> {
  const log = options.logger.child({ component: 'http' });
  const server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      log.warn({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) reply(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  // A client that goes away mid-request is its own business.
  server.on('clientError', (_err, socket) => socket.destroy());
  const { host, port } = splitHostPort(options.listen);
  await listen(server, host, port).catch((err: unknown) => {
    throw new CkptError('UNAVAILABLE', `cannot listen for HTTP on ${options.listen}: ${(err as Error).message}`, {
      cause: err,
    });
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ address }, 'http listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, o: HttpServerOptions): Promise<void> {
  const [rawPath = '/', rawQuery = ''] = (req.url ?? '/').split('?', 2);
  const path = rawPath;
  const route =
    ROUTES[path] ??
    (path.startsWith(API_PREFIX)
      ? 'api'
      : path === '/' || path.startsWith('/static/') || path === '/index.html'
        ? 'asset'
        : undefined);
  if (route === undefined) return reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return reply(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  const head = req.method === 'HEAD';
  switch (route) {
    case 'api': {
      if (o.api === undefined) return reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      const segments = decodeSegments(path.slice(API_PREFIX.length));
      if (segments === undefined)
        return sendJson(res, 400, { errors: ['the path is not valid percent-encoding'] }, head);
      return o.api.handle(req, res, segments, new URLSearchParams(rawQuery));
    }
    case 'asset': {
      const asset = await o.assets?.get(path);
      if (asset === undefined) return reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': asset.body.length,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'content-security-policy': CONTENT_SECURITY_POLICY,
      });
      res.end(head ? undefined : asset.body);
      return;
    }
    case 'metrics':
      return reply(res, 200, o.metricsContentType, await o.metrics(), head);
    case 'healthz':
      return reply(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
    case 'readyz': {
      const { ready, detail } = o.readiness();
      return reply(
        res,
        ready ? 200 : 503,
        'text/plain; charset=utf-8',
        `${ready ? 'ready' : 'not ready'}: ${detail}\n`,
        head,
      );
    }
  }
}

const API_PREFIX = '/api/v1/';

/** The dashboard loads only its own files and talks only to this port. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/** The path's segments, decoded; undefined when one is not valid percent-encoding. */
function decodeSegments(rest: string): string[] | undefined {
  try {
    return rest
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}

const ROUTES: Readonly<Record<string, 'metrics' | 'healthz' | 'readyz'>> = Object.freeze({
  '/metrics': 'metrics',
  '/healthz': 'healthz',
  '/readyz': 'readyz',
});

function reply(res: ServerResponse, status: number, type: string, body: string, head = false): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error): void => reject(err);
    server.once('error', failed);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/** `host:port` or `[v6]:port` split; the address was checked by the configuration. */
export function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(address.slice(at + 1)) };
}

/**
 * The HTTP address when none is configured: the gRPC host with the gRPC
 * port + 1, or port 0 when the gRPC port is 0 (or the last one).
 */
export function defaultHttpListen(grpcListen: string): string {
  const { host, port } = splitHostPort(grpcListen);
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${shown}:${port === 0 || port >= 65535 ? 0 : port + 1}`;
}
