/**
 * The simulated worker's side of the barrier plane's rules, on the same
 * protocol layer as the SDK (`ControlIntake`, `checkBarrier`): what it
 * believes comes from its session; control messages and barriers are
 * checked against that, and every drop is reported as a `dropped` event
 * (and counted in the drop log). Sources take a trigger above the last one
 * they took in the epoch, or decline it; a completion counts only for a
 * checkpoint the worker acknowledged and the coordinator accepted; a
 * recover broadcast is recorded, never adopted.
 */
import type { EventEmitter } from 'node:events';
import type { MsgHdrs } from '@nats-io/nats-core';
import {
  checkBarrier,
  ControlIntake,
  DropLog,
  epochOf,
  type AbortRange,
  type CheckpointBeliefs,
  type ConfirmedIds,
  type ControlKind,
  type Drop,
  type Edge,
} from '../../src/bus/index.js';
import type { Barrier__Output } from '../../src/gen/ckpt/v1/Barrier.js';
import type { CheckpointAbort__Output } from '../../src/gen/ckpt/v1/CheckpointAbort.js';
import type { CheckpointComplete__Output } from '../../src/gen/ckpt/v1/CheckpointComplete.js';
import type { Recover__Output } from '../../src/gen/ckpt/v1/Recover.js';
import type { Trigger__Output } from '../../src/gen/ckpt/v1/Trigger.js';
import type { Welcome__Output } from '../../src/gen/ckpt/v1/Welcome.js';
import type { Logger } from '../../src/log/index.js';
import type { AckBatcher } from '../../src/worker-protocol/index.js';
import type { CheckpointRunner } from './checkpoint-runner.js';
import type { SimEventMap } from './events.js';

/** What the simulated worker received and believed, for tests. */
export interface SimRecords {
  completed: Map<number, CheckpointComplete__Output>;
  aborted: Map<number, CheckpointAbort__Output>;
  recovered: Recover__Output[];
}

/** What a `SimControl` works with. */
export interface SimControlOptions {
  jobId: string;
  /** The worker's local sources. */
  sources: readonly string[];
  runner: CheckpointRunner;
  batcher: AckBatcher;
  events: EventEmitter<SimEventMap>;
  records: SimRecords;
  logger: Logger;
}

/** The simulated worker's beliefs and its handling of what arrives on NATS. */
export class SimControl {
  readonly #o: SimControlOptions;
  readonly #drops: DropLog;
  #intake: ControlIntake | undefined;

  /** See `SimControlOptions`. */
  constructor(options: SimControlOptions) {
    this.#o = options;
    this.#drops = new DropLog(options.logger.child({ component: 'intake' }));
  }

  /** The epoch the session set; 0 before the welcome. */
  get epoch(): number {
    return this.#intake?.beliefs.epoch ?? 0;
  }

  /** The leader term the session confirmed; 0 before the welcome. */
  get term(): number {
    return this.#intake?.term ?? 0;
  }

  /** The first welcome: the worker's epoch, term and confirmed ids. */
  bind(welcome: Welcome__Output): void {
    this.#intake = new ControlIntake({
      jobId: this.#o.jobId,
      epoch: welcome.epoch,
      term: welcome.term,
      handlers: {
        trigger: (m) => this.#onTrigger(m),
        complete: (m) => this.#onComplete(m),
        abort: (m, range) => this.#onAbort(m, range),
        recover: (m) => this.#onRecover(m),
      },
      onDrop: (drop) => this.#dropped(drop),
    });
    this.#intake.confirmIds({ checkpointId: welcome.latestCheckpointId, nextCheckpointId: welcome.nextCheckpointId });
  }

  /**
   * The session moved the worker (a restore, or a welcome after a
   * re-attach): to `epoch` when it differs, confirming `ids` and `term`.
   */
  applySession(epoch: number, ids: ConfirmedIds, term: number, restore: boolean): void {
    const intake = this.#intake;
    if (intake === undefined) return;
    if (epoch !== intake.beliefs.epoch) {
      intake.enterEpoch(epoch);
      this.#o.batcher.discardOtherEpochs(epoch);
      this.#o.runner.reset();
    } else if (restore) {
      intake.beliefs.restored();
    }
    intake.confirmIds(ids);
    intake.confirmTerm(term);
  }

  /** A start of the session confirmed `term`. */
  confirmTerm(term: number): void {
    this.#intake?.confirmTerm(term);
  }

  /** One message of a control subject. */
  receive(kind: ControlKind, data: Uint8Array): void {
    this.#intake?.receive(kind, data);
  }

  /** The beliefs barriers and triggers are checked against (after the welcome). */
  get beliefs(): CheckpointBeliefs | undefined {
    return this.#intake?.beliefs;
  }

  /** Acknowledgements of `checkpointId` go out. */
  ackSent(epoch: number, checkpointId: number): void {
    this.#intake?.ackSent(epoch, checkpointId);
  }

  /** The coordinator answered acknowledgements (or a decline, `ack` false) of `checkpointId`. */
  answered(ack: boolean, epoch: number, checkpointId: number, accepted: boolean): void {
    if (ack) this.#intake?.ackAnswered(epoch, checkpointId, accepted);
    else if (accepted) this.#intake?.beliefs.confirm(checkpointId);
  }

  /** A barrier of `edge`: believed, or dropped and reported. */
  barrier(
    msg: { data: Uint8Array; headers?: MsgHdrs },
    edge: Edge,
    onBarrier: (barrier: Barrier__Output) => void,
  ): void {
    const beliefs = this.#intake?.beliefs;
    if (beliefs === undefined) return;
    const check = checkBarrier(msg.data, edge, epochOf(msg.headers), this.#o.jobId, beliefs);
    if (check.ok) onBarrier(check.barrier);
    else {
      const { epoch, checkpointId } = check.barrier ?? {};
      this.#dropped({ kind: 'barrier', reason: check.reason, epoch, checkpointId, edge: `${edge.from}->${edge.to}` });
    }
  }

  /** Writes what the drop log counted and has not logged yet. */
  flush(): void {
    this.#drops.flush();
  }

  #onTrigger(trigger: Trigger__Output): void {
    const beliefs = this.#intake?.beliefs;
    if (beliefs === undefined) return;
    const { checkpointId, epoch } = trigger;
    this.#o.events.emit('trigger', trigger);
    const taking: string[] = [];
    let refusing: string | undefined;
    for (const source of this.#o.sources) {
      if (beliefs.takes(source, checkpointId)) {
        beliefs.took(source, checkpointId);
        taking.push(source);
      } else refusing ??= source;
    }
    if (refusing !== undefined) {
      if (beliefs.mayDecline(checkpointId)) {
        const message = `trigger of checkpoint ${checkpointId} cannot be taken: the task took a later one`;
        this.#o.batcher.add(checkpointId, epoch, { kind: 'decline', taskId: refusing, message });
      } else {
        this.#dropped({ kind: 'trigger', reason: 'duplicate', term: trigger.term, epoch, checkpointId });
      }
    }
    if (taking.length > 0) this.#o.runner.onTrigger(trigger, taking);
  }

  #onComplete(complete: CheckpointComplete__Output): void {
    this.#o.records.completed.set(complete.checkpointId, complete);
    this.#o.events.emit('complete', complete);
  }

  #onAbort(abort: CheckpointAbort__Output, range: AbortRange): void {
    this.#o.batcher.discard(range.checkpointId, range.upTo);
    this.#o.runner.discard(range.checkpointId, range.upTo);
    this.#o.records.aborted.set(abort.checkpointId, abort);
    this.#o.events.emit('abort', abort);
  }

  /** Recorded once per epoch above the worker's (advisory: the epoch moves with the session's restore). */
  #onRecover(recover: Recover__Output): void {
    const recorded = this.#o.records.recovered.at(-1)?.epoch ?? 0;
    if (recover.epoch <= recorded || recover.epoch < this.epoch) {
      this.#dropped({ kind: 'recover', reason: 'duplicate', term: recover.term, epoch: recover.epoch });
      return;
    }
    this.#o.records.recovered.push(recover);
    this.#o.logger.debug({ epoch: recover.epoch, checkpointId: recover.checkpointId }, 'recover broadcast');
    this.#o.events.emit('recover', recover);
  }

  #dropped(drop: Drop): void {
    this.#drops.drop(drop);
    const termDrop = drop.reason === 'stale-term' || drop.reason === 'unconfirmed-term';
    this.#o.events.emit('dropped', {
      what: drop.kind,
      reason: drop.reason,
      epoch: drop.epoch ?? 0,
      currentEpoch: this.epoch,
      ...(termDrop ? { term: drop.term ?? 0, currentTerm: this.term } : {}),
    });
  }
}
