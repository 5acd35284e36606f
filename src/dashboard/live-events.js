/**
 * The live stream `/api/v1/events` (Server-Sent Events), opened again
 * whenever it ends: the browser's EventSource reconnects by itself after a
 * dropped stream, but gives up after an answer that is not a stream (a
 * standby's 503 while no leader answers); then this opens a new one.
 */

/** How long to wait before opening a stream the browser gave up on. */
const REOPEN_MS = 2000;

/** The events of one page: `checkpoint` entries and `cluster` changes. */
export class LiveEvents {
  /**
   * @param {{ onCheckpoint(entry): void, onCluster(cluster): void, onState(open: boolean, why?: string): void }} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.source = null;
    this.reopen = null;
    this.jobId = undefined;
  }

  /** True while the stream is connected. */
  get isOpen() {
    return this.source?.readyState === EventSource.OPEN;
  }

  /** Opens the stream of `jobId`'s events (all jobs' for null), closing any other. */
  open(jobId) {
    this.close();
    this.jobId = jobId;
    const url = jobId === null ? '/api/v1/events' : `/api/v1/events?job=${encodeURIComponent(jobId)}`;
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener('open', () => this.handlers.onState(true));
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      this.handlers.onState(false, 'the live event stream is down');
      if (source.readyState === EventSource.CLOSED) {
        this.reopen = setTimeout(() => this.open(jobId), REOPEN_MS);
      }
    });
    source.addEventListener('checkpoint', (e) => {
      const entry = parse(e.data);
      if (entry !== undefined) this.handlers.onCheckpoint(entry);
    });
    source.addEventListener('cluster', (e) => {
      const cluster = parse(e.data);
      if (cluster !== undefined) this.handlers.onCluster(cluster);
    });
  }

  /** Closes the stream and forgets a pending reopen. */
  close() {
    clearTimeout(this.reopen);
    this.reopen = null;
    this.source?.close();
    this.source = null;
  }
}

function parse(data) {
  try {
    const value = JSON.parse(data);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
