/**
 * The read-only `ckpt.v1.CheckpointQuery` service for dashboards and CLIs.
 */
import { Metadata } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import type { CheckpointQueryHandlers } from '../gen/ckpt/v1/CheckpointQuery.js';
import type { WatchCheckpointsRequest__Output } from '../gen/ckpt/v1/WatchCheckpointsRequest.js';
import type { WatchCheckpointsResponse } from '../gen/ckpt/v1/WatchCheckpointsResponse.js';
import type { CheckpointSummary__Output } from '../gen/ckpt/v1/CheckpointSummary.js';
import { CkptError } from '../core/errors.js';
import { JOB_GROUP_METADATA } from '../core/job-groups.js';
import { GroupQueries } from './group-queries.js';
import { checkId, echo } from '../core/validate.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import type { AccessControl } from './access-control.js';
import { requireDecoded, statusError, unary, type AccessRule } from './handlers.js';
import { replyStream } from './reply-stream.js';

/** Page size when a request gives 0, and the largest page. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

function pageSize(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

function checkpointToken(token: string): number {
  if (token === '') return Number.MAX_SAFE_INTEGER;
  const n = /^\d{1,16}$/.test(token) ? Number(token) : NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CkptError('MALFORMED', `page_token ${echo(token)} is not from a previous response`);
  return n;
}

/**
 * Checkpoint events until the returned function is called; `ended` once
 * they stop (the coordinator stopped); `live` once the events are watched
 * (every event from then on is given), possibly before the feed returns.
 */
export type Feed = (
  listener: (checkpoint: CheckpointSummary__Output) => void,
  ended: () => void,
  live?: () => void,
) => () => void;

/** The events of one coordinator (of one job, or all of its jobs); live at once. */
export function coordinatorFeed(coordinator: Coordinator, jobId: string | undefined): Feed {
  return (listener, ended, live) => {
    const unsubscribe = coordinator.events.subscribe(jobId, listener);
    live?.();
    const stop = (): void => {
      unsubscribe();
      ended();
    };
    coordinator.stopping.addEventListener('abort', stop, { once: true });
    return () => {
      unsubscribe();
      coordinator.stopping.removeEventListener('abort', stop);
    };
  };
}

/**
 * The job group a call names in `JOB_GROUP_METADATA` (a coordinator asking
 * for one group's jobs), or undefined. MALFORMED when it is not a number.
 */
function groupOfCall(metadata: grpc.Metadata): number | undefined {
  const value = metadata.get(JOB_GROUP_METADATA)[0];
  if (value === undefined) return undefined;
  const text = value.toString();
  if (!/^\d{1,4}$/.test(text))
    throw new CkptError('MALFORMED', `${JOB_GROUP_METADATA} ${echo(text)} is not a job group`);
  return Number(text);
}

/** The fan-out over every job group, for a call that names no job nor group when the jobs form several groups. */
function acrossGroups(coordinators: CoordinatorProvider, metadata: grpc.Metadata): GroupQueries | undefined {
  if (!(coordinators instanceof GroupQueries) || coordinators.count === 1) return undefined;
  return groupOfCall(metadata) === undefined ? coordinators : undefined;
}

/** The coordinator of a call that names no job: of the group it names, else the only one. */
function coordinatorOfCall(coordinators: CoordinatorProvider, metadata: grpc.Metadata): Coordinator {
  const group = groupOfCall(metadata);
  if (group !== undefined && coordinators instanceof GroupQueries) return coordinators.ofGroup(group);
  return coordinators.current();
}

/** How the query service bounds its watchers. */
export interface WatchLimits {
  /** Most `WatchCheckpoints` streams open at once. */
  maxWatchers: number;
  /** Events a watcher may leave unread, in bytes, before its stream is ended. */
  maxUnreadReplyBytes: number;
}

/** The handlers of `ckpt.v1.CheckpointQuery`; each call goes to the leader's coordinator of the moment. */
export function queryHandlers(
  coordinators: CoordinatorProvider,
  access: AccessControl,
  limits: WatchLimits,
): CheckpointQueryHandlers {
  let watchers = 0;
  const read: AccessRule<{ jobId: string }> = { action: 'read', job: (r) => r.jobId };
  return {
    ListJobs: unary(access, { action: 'read', job: 'some' }, async (req, caller, call) => {
      if (req.pageToken !== '') checkId(req.pageToken, 'page_token');
      const visible = (jobId: string): boolean => access.allows(caller, 'read', jobId);
      const across = acrossGroups(coordinators, call.metadata);
      if (across !== undefined) {
        const page = await across.listJobs(req.pageToken, pageSize(req.pageSize));
        const jobs = page.jobs.filter((j) => visible(j.spec?.jobId ?? ''));
        return { jobs, nextPageToken: page.more ? page.lastJobId : '' };
      }
      const coordinator = coordinatorOfCall(coordinators, call.metadata);
      const { jobs, more } = coordinator.listJobs(req.pageToken, pageSize(req.pageSize), visible);
      return { jobs, nextPageToken: more ? (jobs.at(-1)?.spec?.jobId ?? '') : '' };
    }),
    ListCheckpoints: unary(access, read, async (req) => {
      const below = checkpointToken(req.pageToken);
      const size = pageSize(req.pageSize);
      const all = (await coordinators.current(req.jobId).listCheckpoints(req.jobId)).filter(
        (c) => c.checkpointId < below,
      );
      const page = all.slice(0, size);
      return { checkpoints: page, nextPageToken: all.length > size ? String(page.at(-1)?.checkpointId ?? '') : '' };
    }),
    GetCheckpoint: unary(access, read, async (req) => {
      const { summary, manifest, tasks } = await coordinators
        .current(req.jobId)
        .getCheckpoint(req.jobId, req.checkpointId);
      return { checkpoint: summary, manifest: manifest ?? null, tasks };
    }),
    GetCheckpointStatistics: unary(access, read, (req) => ({
      statistics: coordinators.current(req.jobId).checkpointStatistics(req.jobId),
    })),
    WatchCheckpoints: (call: grpc.ServerWritableStream<WatchCheckpointsRequest__Output, WatchCheckpointsResponse>) => {
      let feed: Feed;
      let visible: (jobId: string) => boolean;
      try {
        const caller = access.identify(call);
        requireDecoded(call.request);
        const jobId = call.request.jobId;
        if (jobId === '') access.requireSome(caller, 'read');
        else access.require(caller, 'read', jobId);
        visible = (id) => access.allows(caller, 'read', id);
        const across = jobId === '' ? acrossGroups(coordinators, call.metadata) : undefined;
        if (across !== undefined) feed = (listener, ended, live) => across.watchAll(listener, ended, live);
        else {
          const coordinator =
            jobId === '' ? coordinatorOfCall(coordinators, call.metadata) : coordinators.current(jobId);
          if (jobId !== '') coordinator.getJob(jobId);
          feed = coordinatorFeed(coordinator, jobId || undefined);
        }
        if (watchers >= limits.maxWatchers) {
          throw new CkptError('LIMIT_REACHED', `${watchers} watchers are open, the limit`, { retryable: true });
        }
      } catch (err) {
        call.emit('error', statusError(err));
        return;
      }
      const replies = replyStream<WatchCheckpointsResponse>(call, limits.maxUnreadReplyBytes, 'the watch');
      let open = true;
      let unsubscribe = (): void => {};
      const end = (): void => {
        if (open) watchers -= 1;
        open = false;
        unsubscribe();
      };
      watchers += 1;
      try {
        unsubscribe = feed(
          (checkpoint) => {
            if (visible(checkpoint.jobId)) replies.send({ checkpoint });
          },
          () => {
            end();
            replies.end();
          },
          // The response headers tell the watcher that its watch is live (`WatchOptions.onOpen`).
          () => {
            if (open && !replies.ended) call.sendMetadata(new Metadata());
          },
        );
      } catch (err) {
        end();
        call.emit('error', statusError(err));
        return;
      }
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
    },
  };
}
