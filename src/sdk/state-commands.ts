/**
 * A worker's part in the cleanup of state: the coordinator decides which
 * pieces go, the worker reaches its own storage. A `DiscardCommand` is
 * carried out by the backend's `discard`, which deletes only snapshots of
 * the worker's job inside its own directory or bucket; a
 * `ListStateCommand` is answered with `StateListing` messages naming the
 * job's pieces there, in slices of bounded size. Failures are logged and
 * never leave this module: a bad command must not stop a worker.
 */
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { DiscardCommand__Output } from '../gen/ckpt/v1/DiscardCommand.js';
import type { ListStateCommand__Output } from '../gen/ckpt/v1/ListStateCommand.js';
import { slicesOf } from '../core/state-sweep.js';
import type { Logger } from '../log/index.js';
import type { StateBackend } from './state/index.js';

/** What the state commands act on. */
export interface StateCommandsOptions {
  jobId: string;
  backend: Pick<StateBackend, 'discard' | 'listPieces' | 'discardStaleUploads'>;
  /** Sends a message on the session. */
  send(request: AttachRequest): void;
  logger: Logger;
}

/** Carries out the coordinator's state commands one at a time, beside the other commands. */
export class StateCommands {
  readonly #o: StateCommandsOptions;
  #work: Promise<void> = Promise.resolve();

  /** See `StateCommandsOptions`. */
  constructor(options: StateCommandsOptions) {
    this.#o = options;
  }

  /** Deletes what the command names, as far as it lies in this worker's storage. */
  discard(command: DiscardCommand__Output): void {
    if (!this.#ofJob(command.jobId, 'discard')) return;
    this.#enqueue('discard', async () => {
      const { deleted, left } = await this.#o.backend.discard(this.#o.jobId, command.uris);
      const firstLeft = left[0];
      if (deleted > 0 || firstLeft !== undefined) {
        this.#o.logger.debug({ deleted, left: left.length, firstLeft }, 'state pieces discarded');
      }
    });
  }

  /** Reports the job's pieces in this worker's storage. */
  list(command: ListStateCommand__Output): void {
    if (!this.#ofJob(command.jobId, 'list state')) return;
    this.#enqueue('list state', async () => {
      const { backend, jobId } = this.#o;
      const staleMs = Number(command.staleUploadMs);
      if (staleMs > 0 && backend.discardStaleUploads !== undefined) {
        const { deleted, bytes } = await backend.discardStaleUploads(jobId, staleMs);
        if (deleted > 0) this.#o.logger.info({ deleted, bytes }, 'stale uploads deleted');
      }
      const pieces = await backend.listPieces(jobId);
      for (const slice of slicesOf(pieces)) this.#o.send({ stateListing: { pieces: slice } });
    });
  }

  /** Resolves when the commands taken so far are done. */
  settled(): Promise<void> {
    return this.#work;
  }

  #ofJob(jobId: string, what: string): boolean {
    if (jobId === this.#o.jobId) return true;
    this.#o.logger.warn({ command: what, named: jobId }, 'state command of another job ignored');
    return false;
  }

  #enqueue(what: string, run: () => Promise<void>): void {
    this.#work = this.#work
      .then(run)
      .catch((err: unknown) => this.#o.logger.warn({ err, command: what }, 'state command failed'));
  }
}
