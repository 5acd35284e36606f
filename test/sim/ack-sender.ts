/**
 * How a simulated worker sends its acknowledgements and declines: in its
 * session (`acknowledgeVia: 'session'`) while it is open, else as calls
 * that carry the session's token. Every send is recorded (`acked`,
 * `declined`, the `acked`, `declined` and `call-failed` events) and its
 * answer reported to the worker's beliefs.
 */
import type { EventEmitter } from 'node:events';
import type { CoordinatorClient, SessionRequestBody } from '../../src/client/index.js';
import type { AcknowledgeCheckpointResponse__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointResponse.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../../src/log/index.js';
import { splitBySize, type AckBatch } from './ack-batcher.js';
import type { SimEventMap } from './events.js';
import type { SimConfig } from './options.js';
import type { AttachSession } from './session.js';
import type { SimControl } from './sim-control.js';

/** What the sender works with. */
export interface SimAckSenderOptions {
  config: Pick<SimConfig, 'jobId' | 'workerId' | 'ackDeadlineMs' | 'acknowledgeVia' | 'maxAckRequestBytes'>;
  client: CoordinatorClient;
  /** The session open now, if any. */
  session(): AttachSession | undefined;
  control: SimControl;
  events: EventEmitter<SimEventMap>;
  /** Snapshots acknowledged successfully, by checkpoint id. */
  acked: Map<number, TaskSnapshot__Output[]>;
  /** Tasks that declined successfully, by checkpoint id. */
  declined: Map<number, string[]>;
  logger: Logger;
}

/** Sends a simulated worker's results. */
export class SimAckSender {
  readonly #o: SimAckSenderOptions;

  /** See `SimAckSenderOptions`. */
  constructor(options: SimAckSenderOptions) {
    this.#o = options;
  }

  /** Sends one batch: its declines, then its acknowledgements in runs of bounded size. Never rejects. */
  async send(batch: AckBatch): Promise<void> {
    const { checkpointId, epoch } = batch;
    if (batch.declines.length > 0) await this.#decline(batch);
    for (const run of splitBySize(batch.acks, this.#o.config.maxAckRequestBytes)) {
      const taskIds = run.map((s) => s.taskId);
      try {
        const response = await this.acknowledge({ checkpointId, epoch, snapshots: run });
        this.#o.acked.set(checkpointId, [...(this.#o.acked.get(checkpointId) ?? []), ...run]);
        this.#o.events.emit('acked', { checkpointId, epoch, taskIds, response });
      } catch (err) {
        this.#failed('acknowledgeCheckpoint', { checkpointId, epoch, taskIds }, err);
      }
    }
  }

  /** Sends acknowledgements as the worker's tasks would; rejects with the refusal. */
  async acknowledge(
    request: { checkpointId: number; epoch: number; snapshots: TaskSnapshot__Output[] },
    deadlineMs = this.#o.config.ackDeadlineMs,
  ): Promise<AcknowledgeCheckpointResponse__Output> {
    const { checkpointId, epoch } = request;
    const { control } = this.#o;
    control.ackSent(epoch, checkpointId);
    try {
      const response = await this.#deliver({ acknowledge: request }, deadlineMs, (sessionToken) =>
        this.#o.client.acknowledgeCheckpoint({ ...this.#ids(), ...request, sessionToken }, { deadlineMs }),
      );
      control.answered(true, epoch, checkpointId, true);
      return response;
    } catch (err) {
      control.answered(true, epoch, checkpointId, false);
      throw err;
    }
  }

  async #decline(batch: AckBatch): Promise<void> {
    const { checkpointId, epoch, declines } = batch;
    const taskIds = declines.map((d) => d.taskId);
    const deadlineMs = this.#o.config.ackDeadlineMs;
    try {
      await this.#deliver({ decline: { checkpointId, epoch, declines } }, deadlineMs, (sessionToken) =>
        this.#o.client.declineCheckpoint(
          { ...this.#ids(), checkpointId, epoch, declines, sessionToken },
          { deadlineMs },
        ),
      );
      this.#o.control.answered(false, epoch, checkpointId, true);
      this.#o.declined.set(checkpointId, [...(this.#o.declined.get(checkpointId) ?? []), ...taskIds]);
      this.#o.events.emit('declined', { checkpointId, epoch, taskIds });
    } catch (err) {
      this.#failed('declineCheckpoint', { checkpointId, epoch, taskIds }, err);
    }
  }

  /** In the session when configured so and it is open; else `call` with the session's token. */
  async #deliver<T>(
    body: SessionRequestBody,
    deadlineMs: number,
    call: (sessionToken: string) => Promise<T>,
  ): Promise<T | AcknowledgeCheckpointResponse__Output> {
    const session = this.#o.session();
    if (this.#o.config.acknowledgeVia === 'session' && session?.open === true) return session.request(body, deadlineMs);
    return call(session?.welcome.sessionToken ?? '');
  }

  #ids(): { jobId: string; workerId: string } {
    return { jobId: this.#o.config.jobId, workerId: this.#o.config.workerId };
  }

  #failed(
    method: 'acknowledgeCheckpoint' | 'declineCheckpoint',
    call: { checkpointId: number; epoch: number; taskIds: string[] },
    err: unknown,
  ): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#o.logger.debug({ err: error, checkpointId: call.checkpointId, method }, 'call failed');
    this.#o.events.emit('call-failed', { ...call, method, error });
  }
}
