/**
 * A loopback TCP proxy for fault tests: clients connect to the proxy instead
 * of a server, and the test cuts, stalls and restores the link between them
 * without touching either process.
 *
 * The listening socket stays bound for the proxy's whole life, so the port
 * never changes and no other process can take it while the link is cut.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../log/index.js';

/** Options of `startTcpProxy`. */
export interface TcpProxyOptions {
  /** The server to forward to, `host:port` (an IPv6 host in brackets). Required. */
  target: string;
  /** Port to listen on, on 127.0.0.1. Default: 0, a free port the kernel picks. */
  port?: number;
  /** Names the proxy in logs. Default: `proxy <target>`. */
  label?: string;
  /** Receives link events at debug level. Default: silent. */
  logger?: Logger;
}

/** What the proxy does with traffic: forward it, refuse it, or hold it. */
export type TcpProxyState = 'open' | 'cut' | 'paused' | 'closed';

/** A running proxy. */
export interface TcpProxy {
  /** `127.0.0.1:<port>`, for clients that take `host:port`. */
  readonly address: string;
  /** The port the proxy listens on. */
  readonly port: number;
  /** The forwarded `host:port`. */
  readonly target: string;
  readonly state: TcpProxyState;
  /** Client connections currently open through the proxy. */
  readonly connections: number;
  /** Client connections accepted since the start, including refused ones. */
  readonly accepted: number;
  /**
   * Resets every open connection (the client sees ECONNRESET) and resets
   * every new one as soon as it is accepted, until `restore()`.
   */
  cut(): void;
  /**
   * Stops moving bytes in both directions without closing anything, as a
   * stalled network does; new connections are accepted and held. The peers
   * notice only through their own timeouts.
   */
  pause(): void;
  /** Forwards again: after `cut`, new connections go through; after `pause`, held bytes flow. */
  restore(): void;
  /** Resets every connection and stops listening. Idempotent. */
  close(): Promise<void>;
}

/** One client connection and its connection to the target. */
interface Link {
  client: Socket;
  upstream: Socket | undefined;
}

/** Starts a proxy on 127.0.0.1 forwarding to `options.target`; resolves once it listens. */
export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const target = parseHostPort(options.target);
  const proxy = new LoopbackProxy(options.target, target, options);
  await proxy.listen(options.port ?? 0);
  return proxy;
}

class LoopbackProxy implements TcpProxy {
  readonly target: string;
  #state: TcpProxyState = 'open';
  #accepted = 0;
  readonly #links = new Set<Link>();
  readonly #server: Server;
  readonly #destination: { host: string; port: number };
  readonly #log: Logger;

  constructor(target: string, destination: { host: string; port: number }, options: TcpProxyOptions) {
    this.target = target;
    this.#destination = destination;
    this.#log = (options.logger ?? silentLogger()).child({
      component: 'tcp-proxy',
      proxy: options.label ?? `proxy ${target}`,
    });
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get state(): TcpProxyState {
    return this.#state;
  }

  get connections(): number {
    return this.#links.size;
  }

  get accepted(): number {
    return this.#accepted;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  cut(): void {
    if (this.#state === 'closed') return;
    this.#state = 'cut';
    this.#log.debug({ connections: this.#links.size }, 'link cut');
    for (const link of this.#links) this.#reset(link);
  }

  pause(): void {
    if (this.#state === 'closed' || this.#state === 'cut') return;
    this.#state = 'paused';
    this.#log.debug({ connections: this.#links.size }, 'link paused');
    for (const link of this.#links) {
      link.client.pause();
      link.upstream?.pause();
    }
  }

  restore(): void {
    if (this.#state === 'closed') return;
    const wasPaused = this.#state === 'paused';
    this.#state = 'open';
    this.#log.debug({ connections: this.#links.size }, 'link restored');
    if (!wasPaused) return;
    for (const link of this.#links) {
      if (link.upstream === undefined) this.#connectUpstream(link);
      else this.#flow(link);
    }
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    for (const link of this.#links) this.#reset(link);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.#accepted += 1;
    if (this.#state === 'cut' || this.#state === 'closed') {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, upstream: undefined };
    this.#links.add(link);
    client.on('error', () => this.#reset(link));
    client.once('close', () => this.#reset(link));
    if (this.#state === 'paused') client.pause();
    else this.#connectUpstream(link);
  }

  #connectUpstream(link: Link): void {
    const upstream = connect({ ...this.#destination, noDelay: true, allowHalfOpen: true });
    link.upstream = upstream;
    upstream.on('error', () => this.#reset(link));
    upstream.once('close', () => this.#reset(link));
    forward(link.client, upstream, () => this.#state === 'open');
    forward(upstream, link.client, () => this.#state === 'open');
    // A client accepted while paused was paused explicitly; a data listener alone does not resume it.
    link.client.resume();
  }

  /** Resumes reading on both sides after a pause. */
  #flow(link: Link): void {
    if (!link.client.writableNeedDrain) link.upstream?.resume();
    if (!link.upstream?.writableNeedDrain) link.client.resume();
  }

  /**
   * Ends a link abruptly: the client gets a TCP reset, the target's side is
   * destroyed. A client whose side the proxy already ended (the target ended
   * first) is destroyed instead: Node cannot reset a socket while its
   * shutdown is under way, and then drops the handle without closing it, so
   * that the process never exits (it spins in Node's handle cleanup).
   */
  #reset(link: Link): void {
    if (!this.#links.delete(link)) return;
    if (link.client.writableEnded) link.client.destroy();
    else if (!link.client.destroyed) link.client.resetAndDestroy();
    link.upstream?.destroy();
  }
}

/**
 * Copies `from` to `to` with backpressure, and a half-close as a half-close.
 * Reading resumes after a drain only while `open()` holds, so that a paused
 * link stays paused.
 */
function forward(from: Socket, to: Socket, open: () => boolean): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) from.pause();
  });
  to.on('drain', () => {
    if (open()) from.resume();
  });
  from.once('end', () => to.end());
}

/** Splits `host:port`; throws an error naming the option when it is not one. */
function parseHostPort(text: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (match === null || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new Error(`option target must be host:port, got ${JSON.stringify(text)}`);
  }
  return { host: match[1] as string, port };
}
