/**
 * Free loopback TCP ports for local servers.
 */
import { createServer } from 'node:net';

/** How many times `freePort` asks the kernel before giving up. */
export const DEFAULT_FREE_PORT_ATTEMPTS = 50;

/** Ports handed out in this process, so that two launchers never share one. */
const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that was free a moment ago and that this process has
 * not handed out before. Another process may still take it before it is bound,
 * so launchers retry with fresh ports when a bind fails.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < DEFAULT_FREE_PORT_ATTEMPTS; attempt++) {
    const port = await ephemeralPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no unused loopback port after ${DEFAULT_FREE_PORT_ATTEMPTS} attempts`);
}

/** Lets the kernel pick a port by listening on port 0, then releases it. */
function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('listen(0) returned no port'))));
    });
  });
}
