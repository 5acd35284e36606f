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
 * never ends the process (see `startHttpEndpoint`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { splitHostPort } from '../core/host-port.js';
import type { Logger } from '../log/index.js';
import {
  startHttpEndpoint,
  TEXT_PLAIN,
  type HttpEndpoint,
  type HttpFallback,
  type HttpReply,
  type HttpTls,
} from '../metrics/http-endpoint.js';
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
  /** Serve HTTPS. @default undefined (HTTP) */
  tls?: HttpTls;
  logger: Logger;
}

/** A running HTTP server. */
export type CoordinatorHttpServer = HttpEndpoint;

/** Starts the server; rejects with a `CkptError` (UNAVAILABLE) when the address cannot be bound. */
export function startHttpServer(o: HttpServerOptions): Promise<CoordinatorHttpServer> {
  const routes = new Map<string, () => HttpReply | Promise<HttpReply>>([
    ['/metrics', async () => ({ status: 200, type: o.metricsContentType, body: await o.metrics() })],
    ['/healthz', () => ({ status: 200, type: TEXT_PLAIN, body: 'ok\n' })],
    [
      '/readyz',
      () => {
        const { ready, detail } = o.readiness();
        return { status: ready ? 200 : 503, type: TEXT_PLAIN, body: `${ready ? 'ready' : 'not ready'}: ${detail}\n` };
      },
    ],
  ]);
  return startHttpEndpoint({
    listen: o.listen,
    routes,
    fallback: dashboard(o),
    logger: o.logger,
    ...(o.tls === undefined ? {} : { tls: o.tls }),
  });
}

const API_PREFIX = '/api/v1/';

/** The dashboard loads only its own files and talks only to this port. */
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/** The dashboard's paths: its API and its files. */
function dashboard(o: HttpServerOptions): HttpFallback {
  return {
    handles: (path) =>
      path.startsWith(API_PREFIX) || path === '/' || path === '/index.html' || path.startsWith('/static/'),
    async serve(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
      const head = req.method === 'HEAD';
      if (path.startsWith(API_PREFIX)) {
        if (o.api === undefined) return notFound(res);
        const segments = decodeSegments(path.slice(API_PREFIX.length));
        if (segments === undefined)
          return sendJson(res, 400, { errors: ['the path is not valid percent-encoding'] }, head);
        return o.api.handle(req, res, segments, new URLSearchParams(query));
      }
      const asset = await o.assets?.get(path);
      if (asset === undefined) return notFound(res);
      res.writeHead(200, {
        'content-type': asset.type,
        'content-length': asset.body.length,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'content-security-policy': CONTENT_SECURITY_POLICY,
      });
      res.end(head ? undefined : asset.body);
    },
  };
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': TEXT_PLAIN, 'cache-control': 'no-store' });
  res.end('not found\n');
}

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

/**
 * The HTTP address when none is configured: the gRPC host with the gRPC
 * port + 1, or port 0 when the gRPC port is 0 (or the last one).
 */
export function defaultHttpListen(grpcListen: string): string {
  const { host, port } = splitHostPort(grpcListen);
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${shown}:${port === 0 || port >= 65535 ? 0 : port + 1}`;
}
