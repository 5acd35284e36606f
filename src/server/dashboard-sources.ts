/**
 * The sources the dashboard API answers from: the leader's own coordinator
 * (`localSource`, through the functions the `CheckpointQuery` service
 * calls), or the leader over gRPC (`remoteSource`, through the
 * `CheckpointQuery` and `Coordinator` services, its events through
 * `WatchCheckpoints`), as a standby forwards each request.
 */
import * as grpc from '@grpc/grpc-js';
import { JOB_GROUP_METADATA } from '../core/job-groups.js';
import { createCoordinatorClient, type CoordinatorClient } from '../client/coordinator-client.js';
import { toCkptError } from '../client/error-reason.js';
import type { ClientOptions } from '../client/client-options.js';
import { createQueryClient, type QueryClient } from '../client/query-client.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { CkptError } from '../core/errors.js';
import type { CheckpointStatistics__Output } from '../gen/ckpt/v1/CheckpointStatistics.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import type { TaskCheckpointStatistics__Output } from '../gen/ckpt/v1/TaskCheckpointStatistics.js';
import { coordinatorFeed } from './query-service.js';

/** The queries the API answers from: the leader's own coordinator, or the leader over gRPC. */
export interface QuerySource {
  readonly servedBy: 'local' | 'leader';
  jobs(): Promise<JobInfo__Output[]>;
  /** Up to `limit` jobs ordered by id after `afterJobId`, and whether more follow. */
  jobPage(afterJobId: string, limit: number): Promise<{ jobs: JobInfo__Output[]; more: boolean }>;
  job(jobId: string): Promise<JobInfo__Output>;
  statistics(jobId: string): Promise<CheckpointStatistics__Output>;
  checkpoint(
    jobId: string,
    checkpointId: number,
  ): Promise<{ summary: CheckpointSummary__Output; tasks: TaskCheckpointStatistics__Output[] }>;
  /**
   * Calls `listener` with every lifecycle event until the returned function
   * is called; `ended` once the events stop; `live` once the watch is
   * established (no event after it is missed), possibly before it returns.
   */
  watch(
    jobId: string | undefined,
    listener: (s: CheckpointSummary__Output) => void,
    ended: () => void,
    live?: () => void,
  ): () => void;
}

/** Jobs listed per page, locally and over gRPC. */
const JOB_PAGE = 500;
/** Deadline of each call a standby forwards. */
const FORWARD_DEADLINE_MS = 3_000;
/** `fn`'s result as a promise, which rejects when `fn` throws. */
function settle<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => resolve(fn()));
}

/** The leader's own coordinator as a source. */
export function localSource(coordinator: Coordinator): QuerySource {
  return {
    servedBy: 'local',
    jobs: () =>
      settle(() => {
        const jobs: JobInfo__Output[] = [];
        for (let after = '', more = true; more;) {
          const page = coordinator.listJobs(after, JOB_PAGE);
          jobs.push(...page.jobs);
          after = page.jobs.at(-1)?.spec?.jobId ?? '';
          more = page.more && page.jobs.length > 0;
        }
        return jobs;
      }),
    jobPage: (after, limit) => settle(() => coordinator.listJobs(after, limit)),
    job: (jobId) => settle(() => coordinator.getJob(jobId)),
    statistics: (jobId) => settle(() => coordinator.checkpointStatistics(jobId)),
    checkpoint: (jobId, id) => coordinator.getCheckpoint(jobId, id),
    watch(jobId, listener, ended, live) {
      if (jobId !== undefined) coordinator.getJob(jobId);
      return coordinatorFeed(coordinator, jobId)(listener, ended, live);
    },
  };
}

/**
 * The leader at `address`, reached over gRPC with `peer`'s token and TLS;
 * `close` when the leader changes. With `group`, the leader of that job
 * group: the calls that name no job (the job list, the watch of every
 * job) ask it for that group's jobs only (`JOB_GROUP_METADATA`).
 */
export function remoteSource(address: string, peer: ClientOptions, group?: number): QuerySource & { close(): void } {
  const options: ClientOptions = { ...peer, retry: { timeoutMs: 1_000 } };
  const query: QueryClient = createQueryClient(address, options);
  const client: CoordinatorClient = createCoordinatorClient(address, options);
  const call = { deadlineMs: FORWARD_DEADLINE_MS };
  const metadata = new grpc.Metadata();
  if (group !== undefined) metadata.set(JOB_GROUP_METADATA, String(group));
  const listCall = { ...call, metadata };
  const forwarded = async <T>(what: Promise<T>): Promise<T> => {
    try {
      return await what;
    } catch (err) {
      const e = toCkptError(err);
      if (e.reason !== 'UNAVAILABLE' && e.reason !== 'CANCELED') throw e;
      // grpc-js's own words for a lost connection say nothing an operator can use.
      throw new CkptError('UNAVAILABLE', `the leader ${address} does not answer`, { cause: err, retryable: true });
    }
  };
  return {
    servedBy: 'leader',
    async jobs() {
      const jobs: JobInfo__Output[] = [];
      let token = '';
      do {
        const page = await forwarded(query.listJobs({ pageSize: JOB_PAGE, pageToken: token }, listCall));
        jobs.push(...page.jobs);
        token = page.nextPageToken;
      } while (token !== '');
      return jobs;
    },
    async jobPage(after, limit) {
      const page = await forwarded(query.listJobs({ pageSize: limit, pageToken: after }, listCall));
      return { jobs: page.jobs, more: page.nextPageToken !== '' };
    },
    async job(jobId) {
      const { job } = await forwarded(client.getJob({ jobId }, call));
      if (job === null) throw new CkptError('INTERNAL', `the leader sent no job ${jobId}`);
      return job;
    },
    async statistics(jobId) {
      const { statistics } = await forwarded(query.getCheckpointStatistics({ jobId }, call));
      if (statistics === null) throw new CkptError('INTERNAL', `the leader sent no statistics of job ${jobId}`);
      return statistics;
    },
    async checkpoint(jobId, checkpointId) {
      const res = await forwarded(query.getCheckpoint({ jobId, checkpointId }, call));
      if (res.checkpoint === null) throw new CkptError('INTERNAL', `the leader sent no checkpoint ${checkpointId}`);
      return { summary: res.checkpoint, tasks: res.tasks };
    },
    watch(jobId, listener, ended, live) {
      const abort = new AbortController();
      void (async () => {
        try {
          let opened = false;
          const onOpen = (): void => {
            if (opened) return;
            opened = true;
            live?.();
          };
          const options = { signal: abort.signal, metadata, onOpen };
          for await (const s of query.watchCheckpoints({ jobId: jobId ?? '' }, options)) listener(s);
        } catch {
          // The stream ends either way; the browser reconnects.
        }
        ended();
      })();
      return () => abort.abort();
    },
    close() {
      query.close();
      client.close();
    },
  };
}
