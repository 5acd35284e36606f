/**
 * A loopback TCP proxy that delays the bytes of one link, per direction:
 * the runner puts it between a worker and the coordinator's gRPC port, or
 * between a worker and NATS, so that messages of one channel arrive late
 * relative to the other (a StartCommand after the Triggers, a
 * RestoreCommand after the Recover, or the other way round). Bytes keep
 * their order; a delay changed while bytes wait applies to later bytes.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

/** A running delay proxy. */
export interface DelayProxy {
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  /** Delay of the bytes from the server to the client, in ms. */
  downMs: number;
  /** Delay of the bytes from the client to the server, in ms. */
  upMs: number;
  /** Closes every connection and stops listening. */
  close(): Promise<void>;
}

/** Writes chunks to `to` no earlier than `delayMs()` after they were read, in order. */
class DelayedPipe {
  readonly #queue: Array<{ atMs: number; chunk: Buffer }> = [];
  #lastAtMs = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly to: Socket,
    readonly delayMs: () => number,
  ) {}

  push(chunk: Buffer): void {
    const delay = this.delayMs();
    if (delay <= 0 && this.#queue.length === 0) {
      this.to.write(chunk);
      return;
    }
    const atMs = Math.max(Date.now() + delay, this.#lastAtMs);
    this.#lastAtMs = atMs;
    this.#queue.push({ atMs, chunk });
    this.#schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#queue.length = 0;
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    const head = this.#queue[0];
    if (head === undefined) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#flush();
      },
      Math.max(0, head.atMs - Date.now()),
    );
  }

  #flush(): void {
    const now = Date.now();
    while (this.#queue.length > 0 && (this.#queue[0] as { atMs: number }).atMs <= now) {
      const { chunk } = this.#queue.shift() as { chunk: Buffer };
      if (!this.to.destroyed) this.to.write(chunk);
    }
    this.#schedule();
  }
}

/** Starts a delay proxy to `target` (`host:port`) on a free loopback port. */
export async function startDelayProxy(target: string): Promise<DelayProxy> {
  const at = target.lastIndexOf(':');
  const host = target.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(target.slice(at + 1));
  const sockets = new Set<Socket>();
  const proxy = { downMs: 0, upMs: 0 };
  const server: Server = createServer((client) => {
    const upstream = connect({ host, port });
    sockets.add(client);
    sockets.add(upstream);
    const up = new DelayedPipe(upstream, () => proxy.upMs);
    const down = new DelayedPipe(client, () => proxy.downMs);
    client.on('data', (chunk: Buffer) => up.push(chunk));
    upstream.on('data', (chunk: Buffer) => down.push(chunk));
    const end = (): void => {
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the delay proxy has no TCP address');
  return Object.assign(proxy, {
    address: `127.0.0.1:${address.port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
