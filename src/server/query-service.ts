/**
 * The read-only `ckpt.v1.CheckpointQuery` service for dashboards and CLIs.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CheckpointQueryHandlers } from '../gen/ckpt/v1/CheckpointQuery.js';
import type { WatchCheckpointsRequest__Output } from '../gen/ckpt/v1/WatchCheckpointsRequest.js';
import type { WatchCheckpointsResponse } from '../gen/ckpt/v1/WatchCheckpointsResponse.js';
import { CkptError } from '../core/errors.js';
import { checkId } from '../core/validate.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import type { CoordinatorProvider } from './coordinator-host.js';
import { requireDecoded, statusError, unary, type AuthCheck } from './handlers.js';

/** Page size when a request gives 0, and the largest page. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

function pageSize(requested: number): number {
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

function checkpointToken(token: string): number {
  if (token === '') return Number.MAX_SAFE_INTEGER;
  const n = Number(token);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CkptError('MALFORMED', `page_token ${JSON.stringify(token)} is not from a previous response`);
  return n;
}

/** The handlers of `ckpt.v1.CheckpointQuery`; each call goes to the leader's coordinator of the moment. */
export function queryHandlers(coordinators: CoordinatorProvider, auth: AuthCheck): CheckpointQueryHandlers {
  return {
    ListJobs: unary(auth, (req) => {
      if (req.pageToken !== '') checkId(req.pageToken, 'page_token');
      const { jobs, more } = coordinators.current().listJobs(req.pageToken, pageSize(req.pageSize));
      return { jobs, nextPageToken: more ? (jobs.at(-1)?.spec?.jobId ?? '') : '' };
    }),
    ListCheckpoints: unary(auth, async (req) => {
      const below = checkpointToken(req.pageToken);
      const size = pageSize(req.pageSize);
      const all = (await coordinators.current().listCheckpoints(req.jobId)).filter((c) => c.checkpointId < below);
      const page = all.slice(0, size);
      return { checkpoints: page, nextPageToken: all.length > size ? String(page.at(-1)?.checkpointId ?? '') : '' };
    }),
    GetCheckpoint: unary(auth, async (req) => {
      const { summary, manifest } = await coordinators.current().getCheckpoint(req.jobId, req.checkpointId);
      return { checkpoint: summary, manifest: manifest ?? null };
    }),
    WatchCheckpoints: (call: grpc.ServerWritableStream<WatchCheckpointsRequest__Output, WatchCheckpointsResponse>) => {
      let coordinator: Coordinator;
      try {
        auth(call.metadata);
        requireDecoded(call.request);
        coordinator = coordinators.current();
        if (call.request.jobId !== '') coordinator.getJob(call.request.jobId);
      } catch (err) {
        call.emit('error', statusError(err));
        return;
      }
      const unsubscribe = coordinator.events.subscribe(call.request.jobId || undefined, (checkpoint) => {
        if (!call.writableEnded && !call.destroyed) call.write({ checkpoint });
      });
      const end = (): void => {
        unsubscribe();
        if (!call.writableEnded && !call.destroyed) call.end();
      };
      coordinator.stopping.addEventListener('abort', end, { once: true });
      call.on('close', () => coordinator.stopping.removeEventListener('abort', end));
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
      call.on('error', unsubscribe);
    },
  };
}
