/**
 * `GET /api/v1/...` of a coordinator's HTTP port: the dashboard's JSON and
 * its live events (Server-Sent Events), for every coordinator process.
 *
 * The leader answers from its own coordinator, through the functions the
 * `CheckpointQuery` service calls. A standby forwards each request to the
 * leader through the `CheckpointQuery` and `Coordinator` gRPC services (its
 * events through `WatchCheckpoints`), so it shows exactly what the leader
 * has, and says it (`served_by: "leader"`); both sources are in
 * `dashboard-sources.ts`. Without a reachable leader it answers 503, and
 * the page keeps what it last showed.
 *
 * With an access policy or a shared token (see `access-control.ts`), every
 * request is identified like a gRPC call, by `authorization: Bearer` or by
 * a client certificate the HTTPS port checked, and sees only the jobs its
 * caller may read: 401 for unknown credentials, 403 for a job it may not.
 *
 * Errors are `{"errors": ["…"]}` (as Flink's REST API): 400 for a malformed
 * id, 401 and 403 as above, 404 for an unknown job, checkpoint or path, 409
 * for a quarantined job, 503 while no leader can answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessControl } from './access-control.js';
import { HttpError, viewerOf, type Viewer } from './http-access.js';
import { toCkptError } from '../client/error-reason.js';
import { CkptError, type ErrorReason } from '../core/errors.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { Logger } from '../log/index.js';
import type { QuerySource } from './dashboard-sources.js';
import { configJson, detailsJson, entryJson, jobDetailsJson, jobJson, statisticsJson } from './dashboard-json.js';

/** What this process is, as `/api/v1/cluster` shows it. */
export interface ClusterView {
  role: 'leader' | 'standby' | 'starting' | 'stopping';
  /** The leader's advertised gRPC address; undefined when none is known. */
  leader: string | undefined;
  /** This process's advertised gRPC address. */
  self: string;
  ready: boolean;
  detail: string;
  version: string;
  /** With several job groups: each group's leader as far as known (undefined: none known). */
  groups?: Array<{ group: number; leader: string | undefined }>;
}

/** Most event streams open at once. */
export const MAX_EVENT_STREAMS = 64;
/** Bytes of events a slow reader may leave unread before its stream is ended. */
const MAX_UNREAD_EVENT_BYTES = 1 << 20;
/** How often an event stream is pinged, and looks for a change of role or leader. */
const PING_MS = 15_000;
const CLUSTER_POLL_MS = 1_000;

/** What the API needs from its process. */
export interface DashboardApiOptions {
  cluster: () => ClusterView;
  /** The source to answer from now; throws a `CkptError` (UNAVAILABLE) when no leader is known. */
  source: () => QuerySource;
  /** Who may read what; without it, everyone may read everything. */
  access?: AccessControl;
  logger: Logger;
}

const STATUS_OF: Partial<Record<ErrorReason, number>> = {
  MALFORMED: 400,
  UNKNOWN_JOB: 404,
  UNKNOWN_CHECKPOINT: 404,
  JOB_QUARANTINED: 409,
  UNAUTHENTICATED: 502,
  PERMISSION_DENIED: 502,
  NOT_LEADER: 503,
  SHUTTING_DOWN: 503,
  TAKING_OVER: 503,
  UNAVAILABLE: 503,
  CANCELED: 503,
};

/** The API of one process; `handle` serves a request below `/api/v1/`. */
export class DashboardApi {
  readonly #o: DashboardApiOptions;
  #streams = 0;

  constructor(options: DashboardApiOptions) {
    this.#o = options;
  }

  /** Event streams open now. */
  get streams(): number {
    return this.#streams;
  }

  /** Serves `segments` (the path below `/api/v1/`, decoded) with `query`. */
  async handle(req: IncomingMessage, res: ServerResponse, segments: string[], query: URLSearchParams): Promise<void> {
    try {
      const viewer = viewerOf(this.#o.access, req);
      if (segments.length === 1 && segments[0] === 'events')
        return this.#events(req, res, query.get('job') ?? undefined, viewer);
      const body = await this.#route(segments, viewer);
      sendJson(res, 200, body, req.method === 'HEAD');
    } catch (err) {
      const { status, message } = httpError(err);
      if (status >= 500 && status !== 503) this.#o.logger.warn({ err, path: req.url }, 'dashboard API request failed');
      if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="ckpt"');
      sendJson(res, status, { errors: [message] }, req.method === 'HEAD');
    }
  }

  async #route(segments: string[], viewer: Viewer): Promise<unknown> {
    const [first, jobId, sub, kind, id, ...rest] = segments;
    if (first === 'cluster' && segments.length === 1) return this.#cluster();
    if (first !== 'jobs' || rest.length > 0) throw new HttpError(404, 'not found');
    if (jobId !== undefined) viewer.require(jobId);
    const source = this.#o.source();
    const withServer = (body: Record<string, unknown>) => ({ ...body, served_by: source.servedBy });
    if (jobId === undefined) {
      const jobs = (await source.jobs()).filter((j) => viewer.sees(j.spec?.jobId ?? ''));
      return withServer({ jobs: await Promise.all(jobs.map(async (j) => jobJson(j, await statisticsOf(source, j)))) });
    }
    if (sub === undefined) {
      const job = await source.job(jobId);
      return withServer(jobDetailsJson(job, await statisticsOf(source, job)));
    }
    if (sub !== 'checkpoints') throw new HttpError(404, 'not found');
    if (kind === undefined) return withServer(statisticsJson(await source.statistics(jobId)));
    if (kind === 'config' && id === undefined) return withServer(configJson(await source.job(jobId)));
    if (kind === 'details' && id !== undefined) {
      if (!/^[1-9]\d{0,15}$/.test(id))
        throw new HttpError(400, `checkpoint id ${JSON.stringify(id.slice(0, 40))} is not a positive integer`);
      const { summary, tasks } = await source.checkpoint(jobId, Number(id));
      return withServer(detailsJson(summary, tasks));
    }
    throw new HttpError(404, 'not found');
  }

  #cluster(): Record<string, unknown> {
    const c = this.#o.cluster();
    let servedBy: string | null = null;
    try {
      servedBy = this.#o.source().servedBy;
    } catch {
      // No leader to answer: the page says so.
    }
    return {
      role: c.role,
      leader: c.leader ?? null,
      self: c.self,
      ready: c.ready,
      detail: c.detail,
      version: c.version,
      served_by: servedBy,
      ...(c.groups === undefined
        ? {}
        : { job_groups: c.groups.map((g) => ({ group: g.group, leader: g.leader ?? null })) }),
    };
  }

  /**
   * `text/event-stream` of checkpoint events, and of changes of role or
   * leader. The first event, `cluster`, comes once the watch behind the
   * stream is live (on a standby, once the leader's gRPC watch is open):
   * every checkpoint event after it is streamed. A change of the cluster
   * view is sent as another `cluster` event; the stream ends when its
   * events would come from another source now (this process took over or
   * stopped leading, the leader changed), and the browser reconnects. With
   * job groups the source stays: its watch follows each group's leader.
   */
  #events(req: IncomingMessage, res: ServerResponse, jobId: string | undefined, viewer: Viewer): void {
    if (jobId !== undefined) viewer.require(jobId);
    if (this.#streams >= MAX_EVENT_STREAMS) {
      throw new HttpError(503, `${this.#streams} event streams are open, the limit`);
    }
    const source = this.#o.source();
    let open = true;
    let live = false;
    let clusterShown = '';
    let stopWatch = (): void => {};
    const send = (event: string, data: unknown): void => {
      if (!open || !res.headersSent) return;
      if (res.writableLength > MAX_UNREAD_EVENT_BYTES) return close();
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const close = (): void => {
      if (!open) return;
      open = false;
      this.#streams -= 1;
      stopWatch();
      clearInterval(ping);
      clearInterval(poll);
      if (res.headersSent) res.end();
    };
    const showCluster = (): void => {
      if (!open || !res.headersSent) return;
      const now = JSON.stringify(this.#cluster());
      if (now === clusterShown) return;
      clusterShown = now;
      send('cluster', JSON.parse(now));
    };
    const ping = setInterval(() => open && res.headersSent && res.write(': ping\n\n'), PING_MS);
    const poll = setInterval(() => {
      if (!live) return;
      showCluster();
      // Events come from another source now: the browser reconnects to it.
      if (sourceOf(this.#o) !== source) close();
    }, CLUSTER_POLL_MS);
    ping.unref();
    poll.unref();
    this.#streams += 1;
    try {
      // Watched before the answer starts, so that an unknown job is a 404.
      stopWatch = source.watch(
        jobId,
        (s) => viewer.sees(s.jobId) && send('checkpoint', { job_id: s.jobId, ...entryJson(s) }),
        () => close(),
        () => {
          live = true;
          showCluster();
        },
      );
    } catch (err) {
      close();
      throw err;
    }
    if (!open) throw new HttpError(503, 'the events stopped as they were watched; try again');
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    if (live) showCluster();
    req.on('close', close);
    res.on('error', close);
  }
}

/** The source the API answers from now, or undefined when none can answer. */
function sourceOf(options: DashboardApiOptions): QuerySource | undefined {
  try {
    return options.source();
  } catch {
    return undefined;
  }
}

/** The job's statistics, or null when it has none (quarantined, canceled before it ran). */
async function statisticsOf(source: QuerySource, job: JobInfo__Output): Promise<CheckpointStatistics__Output | null> {
  if (job.state !== 'JOB_STATE_RUNNING' && job.state !== 'JOB_STATE_CANCELED') return null;
  try {
    return await source.statistics(job.spec?.jobId ?? '');
  } catch {
    return null;
  }
}

function httpError(err: unknown): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  const e = err instanceof CkptError ? err : toCkptError(err);
  return { status: STATUS_OF[e.reason] ?? 500, message: e.message };
}

/** Sends `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, head = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : text);
}
