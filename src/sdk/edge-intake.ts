/**
 * What a worker does with each message of an edge its tasks read: records
 * of the current epoch are counted and queued at their reader; barriers
 * are believed only after `checkBarrier`, and one that counts more records
 * than the edge delivered fails its reader (records were lost in transit).
 * Everything else is dropped and counted in the drop log.
 */
import type { Msg } from '@nats-io/nats-core';
import { checkBarrier, type CheckpointBeliefs, type DropLog } from '../bus/index.js';
import type { CkptError } from '../core/errors.js';
import type { Logger } from '../log/index.js';
import { EdgeRecordCounts } from '../worker-protocol/index.js';
import { dataHeadersOf, recordOfMessage } from './record.js';
import type { Edge } from './subjects.js';
import type { TaskRunner } from './task-runner.js';

/** What an edge intake works with. */
export interface EdgeIntakeOptions {
  jobId: string;
  /** The session's beliefs: the current epoch and the plausible checkpoint ids. */
  beliefs: CheckpointBeliefs;
  runners: ReadonlyMap<string, TaskRunner>;
  drops: DropLog;
  logger: Logger;
  /** A reader lost records in `epoch`; it must fail. */
  onLost(taskId: string, epoch: number, error: CkptError): void;
}

/** Receives the messages of the edges local tasks read. */
export class EdgeIntake {
  readonly #o: EdgeIntakeOptions;
  /** Records received per input edge in the current epoch, checked against each barrier's count. */
  readonly #counts = new EdgeRecordCounts();

  /** See `EdgeIntakeOptions`. */
  constructor(options: EdgeIntakeOptions) {
    this.#o = options;
  }

  /** Forgets the record counts (a new epoch). */
  reset(): void {
    this.#counts.reset();
  }

  /** One message of `edge` (the same object for every message of one edge). */
  receive(edge: Edge, msg: Msg): void {
    const runner = this.#o.runners.get(edge.to);
    if (runner === undefined) return;
    const { epoch, barrier, key } = dataHeadersOf(msg);
    if (epoch !== this.#o.beliefs.epoch) {
      const reason = epoch === undefined ? 'unmarked' : 'other-epoch';
      this.#o.drops.drop({ kind: barrier ? 'barrier' : 'record', reason, epoch, edge: label(edge) });
      return;
    }
    if (!barrier) {
      this.#counts.record(edge);
      runner.offerRecord(epoch, edge.from, recordOfMessage(msg, edge.from, key));
      return;
    }
    const check = checkBarrier(msg.data, edge, epoch, this.#o.jobId, this.#o.beliefs);
    if (!check.ok) {
      const { epoch: claimed, checkpointId } = check.barrier ?? {};
      this.#o.drops.drop({ kind: 'barrier', reason: check.reason, epoch: claimed, checkpointId, edge: label(edge) });
      return;
    }
    const { checkpointId, records, snapshotType } = check.barrier;
    const lost = this.#counts.lost(edge, epoch, checkpointId, records);
    if (lost !== undefined) {
      // Snapshotting now would commit state without the lost records: the reader fails, the job recovers.
      this.#o.logger.warn({ edge, epoch, err: lost }, 'records lost in transit');
      this.#o.onLost(edge.to, epoch, lost);
      return;
    }
    runner.offerBarrier(epoch, edge.from, checkpointId, snapshotType);
  }
}

function label(edge: Edge): string {
  return `${edge.from}->${edge.to}`;
}
