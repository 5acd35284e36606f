/**
 * The read-only `ckpt.v1.CheckpointQuery` service for dashboards and CLIs.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CheckpointQueryHandlers } from '../gen/ckpt/v1/CheckpointQuery.js';
import type { WatchCheckpointsRequest__Output } from '../gen/ckpt/v1/WatchCheckpointsRequest.js';
import type { WatchCheckpointsResponse } from '../gen/ckpt/v1/WatchCheckpointsResponse.js';
import { CkptError } from '../core/errors.js';
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
    ListJobs: unary(access, { action: 'read', job: 'some' }, (req, caller) => {
      if (req.pageToken !== '') checkId(req.pageToken, 'page_token');
      const visible = (jobId: string): boolean => access.allows(caller, 'read', jobId);
      const { jobs, more } = coordinators.current().listJobs(req.pageToken, pageSize(req.pageSize), visible);
      return { jobs, nextPageToken: more ? (jobs.at(-1)?.spec?.jobId ?? '') : '' };
    }),
    ListCheckpoints: unary(access, read, async (req) => {
      const below = checkpointToken(req.pageToken);
      const size = pageSize(req.pageSize);
      const all = (await coordinators.current().listCheckpoints(req.jobId)).filter((c) => c.checkpointId < below);
      const page = all.slice(0, size);
      return { checkpoints: page, nextPageToken: all.length > size ? String(page.at(-1)?.checkpointId ?? '') : '' };
    }),
    GetCheckpoint: unary(access, read, async (req) => {
      const { summary, manifest, tasks } = await coordinators.current().getCheckpoint(req.jobId, req.checkpointId);
      return { checkpoint: summary, manifest: manifest ?? null, tasks };
    }),
    GetCheckpointStatistics: unary(access, read, (req) => ({
      statistics: coordinators.current().checkpointStatistics(req.jobId),
    })),
    WatchCheckpoints: (call: grpc.ServerWritableStream<WatchCheckpointsRequest__Output, WatchCheckpointsResponse>) => {
      let coordinator: Coordinator;
      let visible: (jobId: string) => boolean;
      try {
        const caller = access.identify(call);
        requireDecoded(call.request);
        if (call.request.jobId === '') access.requireSome(caller, 'read');
        else access.require(caller, 'read', call.request.jobId);
        visible = (jobId) => access.allows(caller, 'read', jobId);
        coordinator = coordinators.current();
        if (call.request.jobId !== '') coordinator.getJob(call.request.jobId);
        if (watchers >= limits.maxWatchers) {
          throw new CkptError('LIMIT_REACHED', `${watchers} watchers are open, the limit`, { retryable: true });
        }
      } catch (err) {
        call.emit('error', statusError(err));
        return;
      }
      watchers += 1;
      const replies = replyStream<WatchCheckpointsResponse>(call, limits.maxUnreadReplyBytes, 'the watch');
      const unsubscribe = coordinator.events.subscribe(call.request.jobId || undefined, (checkpoint) => {
        if (visible(checkpoint.jobId)) replies.send({ checkpoint });
      });
      let open = true;
      const end = (): void => {
        if (open) watchers -= 1;
        open = false;
        unsubscribe();
        coordinator.stopping.removeEventListener('abort', stop);
      };
      const stop = (): void => {
        end();
        replies.end();
      };
      coordinator.stopping.addEventListener('abort', stop, { once: true });
      call.on('cancelled', end);
      call.on('close', end);
      call.on('error', end);
    },
  };
}
