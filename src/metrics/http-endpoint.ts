/**
 * A small read-only HTTP endpoint on `node:http`, for the coordinator's
 * HTTP port and a worker's metrics port: fixed paths answered to GET and
 * HEAD, 404 for any other path, 405 for another method on a known one.
 * Bodies are not read; a request, however malformed, never ends the
 * process, and a handler that fails answers 500.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CkptError } from '../core/errors.js';
import { splitHostPort } from '../core/host-port.js';
import type { Logger } from '../log/index.js';

/** What a path answers. */
export interface HttpReply {
  status: number;
  type: string;
  body: string;
}

/** The paths served (`/metrics`, say) and what each answers. */
export type HttpRoutes = ReadonlyMap<string, () => HttpReply | Promise<HttpReply>>;

/**
 * What serves paths beyond the fixed routes (the coordinator's dashboard):
 * `handles` says which; `serve` answers a GET or HEAD of one, streaming or
 * not, with the raw query string.
 */
export interface HttpFallback {
  handles(path: string): boolean;
  serve(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void>;
}

/** What an endpoint serves, and where. */
export interface HttpEndpointOptions {
  /** host:port (checked by `isHostPort`); port 0 picks a free one. */
  listen: string;
  routes: HttpRoutes;
  fallback?: HttpFallback;
  /** Serve HTTPS instead of HTTP. @default undefined (HTTP) */
  tls?: HttpTls;
  /** Gets a child logger with `component: 'http'`. */
  logger: Logger;
}

/** The PEM files of an HTTPS endpoint, as `HttpTls.load` reads them. */
export interface HttpTlsFiles {
  cert: Buffer;
  key: Buffer;
  /** CAs of client certificates: clients are asked for one, which the handlers may check (`socket.authorized`). */
  ca?: Buffer;
}

/** HTTPS: how to read the files, and how often to read them again. */
export interface HttpTls {
  /** Reads and checks the files; throws when they do not check. */
  load(): HttpTlsFiles;
  reloadIntervalMs: number;
}

/** A running endpoint. */
export interface HttpEndpoint {
  /** host:port with the port actually bound. */
  readonly address: string;
  /** Stops accepting connections and ends open ones. */
  close(): Promise<void>;
}

/** Plain text, as the endpoints' own answers are. */
export const TEXT_PLAIN = 'text/plain; charset=utf-8';

/** Starts the endpoint; rejects with a `CkptError` (UNAVAILABLE) when the address cannot be bound. */
export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const log = options.logger.child({ component: 'http' });
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res, options.routes, options.fallback).catch((err: unknown) => {
      log.warn({ err, url: req.url }, 'http request failed');
      if (!res.headersSent) reply(res, { status: 500, type: TEXT_PLAIN, body: 'internal error\n' });
      else res.destroy();
    });
  };
  let stopReload = (): void => undefined;
  let server: Server | HttpsServer;
  if (options.tls === undefined) {
    server = createServer(onRequest);
  } else {
    const tls = options.tls;
    let files = tls.load();
    // A client certificate is asked for, never required: probes and Prometheus come without one.
    const context = (f: HttpTlsFiles) => ({ cert: f.cert, key: f.key, ca: f.ca, requestCert: f.ca !== undefined, rejectUnauthorized: false }); // prettier-ignore
    const https = createHttpsServer(context(files), onRequest);
    let warned = '';
    const timer = setInterval(() => {
      try {
        const next = tls.load();
        warned = '';
        if (next.cert.equals(files.cert) && next.key.equals(files.key) && (next.ca?.equals(files.ca ?? Buffer.alloc(0)) ?? files.ca === undefined)) return; // prettier-ignore
        https.setSecureContext(context(next));
        files = next;
        log.info('HTTPS certificate reloaded');
      } catch (err) {
        const message = (err as Error).message;
        if (message !== warned) log.warn({ err: message }, 'HTTPS certificate not reloaded; the one in use stays');
        warned = message;
      }
    }, tls.reloadIntervalMs).unref();
    stopReload = () => clearInterval(timer);
    server = https;
  }
  // A client that sends junk or goes away mid-request is its own business.
  server.on('clientError', (_err, socket) => socket.destroy());
  const { host, port } = splitHostPort(options.listen);
  await listen(server, host, port).catch((err: unknown) => {
    stopReload();
    throw new CkptError('UNAVAILABLE', `cannot listen for HTTP on ${options.listen}: ${(err as Error).message}`, {
      cause: err,
    });
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ address, tls: options.tls !== undefined }, 'http listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        stopReload();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  routes: HttpRoutes,
  fallback: HttpFallback | undefined,
): Promise<void> {
  // Only the path matters to the routes; a malformed URL is a 404, not an error.
  const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
  const route = routes.get(path);
  const other = route === undefined && fallback?.handles(path) === true;
  if (route === undefined && !other) return reply(res, { status: 404, type: TEXT_PLAIN, body: 'not found\n' });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return reply(res, { status: 405, type: TEXT_PLAIN, body: 'method not allowed\n' });
  }
  if (route === undefined) return fallback?.serve(req, res, path, query);
  reply(res, await route(), req.method === 'HEAD');
}

function reply(res: ServerResponse, { status, type, body }: HttpReply, head = false): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function listen(server: Server | HttpsServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error): void => reject(err);
    server.once('error', failed);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
