/**
 * The handles that keep this process alive (sockets, servers, child
 * processes), described for people, and the sockets Node lost track of.
 */
import { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Server, Socket } from 'node:net';

/** Node's list of live handles: undocumented and not in @types/node, but in every Node release. */
interface ProcessHandles {
  _getActiveHandles(): unknown[];
}

/** Node's part of a socket, a server or a timer: `hasRef()` on the libuv handle. */
interface WithHandle {
  _handle?: { hasRef?: () => boolean; fd?: number } | null;
}

/** Every handle Node holds open and ref'd: sockets, servers, child processes, stdio. */
export function activeHandles(): unknown[] {
  return (process as unknown as ProcessHandles)._getActiveHandles();
}

/**
 * Sockets destroyed in JavaScript whose handle is still open. Node closes
 * the handle of a destroyed socket within one turn of the event loop, so a
 * socket that stays in this list was lost: no `close` will ever come for it,
 * and at exit Node spins forever trying to close it. `resetAndDestroy()` on a
 * socket whose `end()` is still under way leaves such a socket.
 */
export function leakedSockets(): Socket[] {
  return activeHandles().filter((h): h is Socket => h instanceof Socket && h.destroyed && !hasHandle(h));
}

/** One line for a live handle: what it is, its addresses or pid, whether it holds the process. */
export function describeHandle(handle: unknown): string {
  if (handle instanceof ChildProcess) {
    return `child process pid ${handle.pid ?? '?'}: ${handle.spawnargs.join(' ')}`;
  }
  if (handle instanceof Socket) return `socket ${socketText(handle)}${refText(handle)}`;
  if (handle instanceof Server) {
    const address = handle.address();
    const text = typeof address === 'string' ? address : `${address?.address ?? '?'}:${address?.port ?? '?'}`;
    return `server listening on ${text}${refText(handle)}`;
  }
  return `handle ${(handle as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof handle}`;
}

function socketText(socket: Socket): string {
  if (!hasHandle(socket)) return 'destroyed in JavaScript, its handle never closed';
  if (socket.remotePort !== undefined) {
    return `${socket.localAddress ?? '?'}:${socket.localPort ?? '?'} -> ${socket.remoteAddress ?? '?'}:${socket.remotePort}`;
  }
  const fd = (socket as WithHandle)._handle?.fd;
  if (fd === 0 || fd === 1 || fd === 2) return `stdio fd ${fd}`;
  return socket.connecting ? 'connecting' : `unconnected, fd ${fd ?? '?'}`;
}

function hasHandle(socket: Socket): boolean {
  return (socket as WithHandle)._handle != null;
}

/** ` (unref'd)` for a handle that does not hold the process. */
function refText(handle: unknown): string {
  return (handle as WithHandle)._handle?.hasRef?.() === false ? " (unref'd)" : '';
}

/**
 * The pids of every process below `pid` (children, their children, ...),
 * read from /proc; empty where there is no /proc.
 */
export function descendantPids(pid = process.pid): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    const child = Number(entry);
    if (!Number.isSafeInteger(child)) continue;
    const parent = parentPid(child);
    if (parent === undefined) continue;
    const siblings = children.get(parent);
    if (siblings === undefined) children.set(parent, [child]);
    else siblings.push(child);
  }
  const found: number[] = [];
  const pending = [pid];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    for (const child of children.get(next) ?? []) {
      found.push(child);
      pending.push(child);
    }
  }
  return found;
}

/** The parent of `pid` from /proc/<pid>/stat, or undefined once it is gone. */
function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isSafeInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILLs every process below this one; returns the pids it signalled. */
export function killDescendantsSync(): number[] {
  const pids = descendantPids();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return pids;
}
