/**
 * The one reading of a listen address, `host:port` or `[v6]:port`, for the
 * coordinator's configuration and the worker's metrics port.
 */

/** True for `host:port` (the host may be empty: every interface) or `[v6]:port`, port 0 to 65535. */
export function isHostPort(address: string): boolean {
  const match = /^(?:[^:[\]]*|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(address);
  return match !== null && Number(match[1]) <= 65_535;
}

/** `host:port` or `[v6]:port` split (checked by `isHostPort` before); an empty host is every interface. */
export function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(address.slice(at + 1)) };
}
