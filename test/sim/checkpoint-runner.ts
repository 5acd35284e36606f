/**
 * The checkpoint side of the simulated tasks: sources snapshot on a
 * trigger, readers on aligned barriers; each forwards its barrier on the
 * edge subject to every downstream task and hands its result to the
 * acknowledgement batcher.
 */
import type { MsgHdrs, NatsConnection } from '@nats-io/nats-core';
import { barrierHeaders, controlMessageCodecs, type Edge, type JobSubjects } from '../../src/bus/index.js';
import type { Barrier__Output } from '../../src/gen/ckpt/v1/Barrier.js';
import type { SnapshotType__Output } from '../../src/gen/ckpt/v1/SnapshotType.js';
import type { TaskSnapshot__Output } from '../../src/gen/ckpt/v1/TaskSnapshot.js';
import type { Trigger__Output } from '../../src/gen/ckpt/v1/Trigger.js';
import type { Logger } from '../../src/log/index.js';
import type { AckBatcher, TaskResult } from '../../src/worker-protocol/index.js';
import { BarrierAligner } from './alignment.js';
import type { HookResult, TaskBehaviour } from './options.js';
import { simulatedSnapshot } from './snapshot.js';
import type { WorkerTopology } from './topology.js';

/** What the runner works with. */
export interface RunnerOptions {
  nc: NatsConnection;
  jobId: string;
  topology: WorkerTopology;
  /** Snapshot at the first barrier instead of the last (unaligned mode). */
  unaligned: boolean;
  stateBytes: number;
  behaviourOf(taskId: string): TaskBehaviour;
  batcher: AckBatcher;
  logger: Logger;
}

interface Round {
  checkpointId: number;
  epoch: number;
  snapshotType: SnapshotType__Output;
}

/** Runs the local tasks' part of each checkpoint. */
export class CheckpointRunner {
  readonly #o: RunnerOptions;
  readonly #aligner: BarrierAligner;
  readonly #codec = controlMessageCodecs().barrier;
  #subjects: JobSubjects | undefined;
  // The edge subjects of each local task's outputs, built on first use.
  readonly #outputSubjects = new Map<string, readonly string[]>();
  // One header set per epoch: 10,000 sources share it instead of building their own.
  #headers: { epoch: number; headers: MsgHdrs } | undefined;

  constructor(options: RunnerOptions) {
    this.#o = options;
    this.#aligner = new BarrierAligner(options.topology.inputsByTask);
  }

  /** Sets the subjects barriers are forwarded on (from the welcome's control prefix). */
  bind(subjects: JobSubjects): void {
    this.#subjects = subjects;
    this.#outputSubjects.clear();
  }

  /** Snapshots `sources` for `trigger` (the local sources that take it). */
  onTrigger(trigger: Trigger__Output, sources: readonly string[]): void {
    const round: Round = {
      checkpointId: trigger.checkpointId,
      epoch: trigger.epoch,
      snapshotType: trigger.snapshotType,
    };
    for (const taskId of sources) this.#complete(taskId, round, 0, true);
  }

  /** Feeds a barrier that arrived on `edge` to its local reader `edge.to`. */
  onBarrier(edge: Edge, barrier: Barrier__Output, nowMs: number): void {
    const round: Round = {
      checkpointId: barrier.checkpointId,
      epoch: barrier.epoch,
      snapshotType: barrier.snapshotType,
    };
    const step = this.#aligner.offer(edge.to, edge.from, barrier.checkpointId, nowMs);
    if (step === undefined) return;
    if (this.#o.unaligned && step.first) this.#forward(edge.to, round);
    if (step.aligned) this.#complete(edge.to, round, step.alignmentMs, !this.#o.unaligned);
  }

  /** Forgets an aborted checkpoint (or, with `upTo`, every one up to it). */
  discard(checkpointId: number, upTo = false): void {
    this.#aligner.discard(checkpointId, upTo);
  }

  /** Forgets all alignment in progress (recovery). */
  reset(): void {
    this.#aligner.reset();
  }

  #complete(taskId: string, round: Round, alignmentMs: number, forward: boolean): void {
    const snapshot = simulatedSnapshot({
      jobId: this.#o.jobId,
      taskId,
      checkpointId: round.checkpointId,
      stateBytes: this.#o.stateBytes,
      source: !this.#o.topology.inputsByTask.has(taskId),
      alignmentMs,
    });
    if (forward) this.#forward(taskId, round);
    const behaviour = this.#o.behaviourOf(taskId);
    if (typeof behaviour !== 'function') {
      this.#result(round, toResult(taskId, behaviour, snapshot));
      return;
    }
    const context = { taskId, checkpointId: round.checkpointId, epoch: round.epoch, snapshot };
    Promise.resolve()
      .then(() => behaviour(context))
      .then((verdict) => this.#result(round, toResult(taskId, verdict, snapshot)))
      .catch((err: unknown) =>
        this.#result(round, { kind: 'decline', taskId, message: `hook failed: ${String(err)}` }),
      );
  }

  #result(round: Round, result: TaskResult): void {
    this.#o.batcher.add(round.checkpointId, round.epoch, result);
  }

  #barrierHeaders(epoch: number): MsgHdrs {
    if (this.#headers?.epoch !== epoch) this.#headers = { epoch, headers: barrierHeaders(epoch) };
    return this.#headers.headers;
  }

  #forward(taskId: string, round: Round): void {
    const subjects = this.#subjectsOfOutputs(taskId);
    if (subjects.length === 0) return;
    const payload = this.#codec.encode({ jobId: this.#o.jobId, fromTaskId: taskId, ...round });
    const headers = this.#barrierHeaders(round.epoch);
    try {
      for (const subject of subjects) this.#o.nc.publish(subject, payload, { headers });
    } catch (err) {
      this.#o.logger.warn({ err, taskId, checkpointId: round.checkpointId }, 'barrier not published');
    }
  }

  #subjectsOfOutputs(taskId: string): readonly string[] {
    const bound = this.#subjects;
    if (bound === undefined) return [];
    let subjects = this.#outputSubjects.get(taskId);
    if (subjects === undefined) {
      subjects = (this.#o.topology.outputsByTask.get(taskId) ?? []).map((to) => bound.edge(taskId, to));
      this.#outputSubjects.set(taskId, subjects);
    }
    return subjects;
  }
}

function toResult(taskId: string, verdict: HookResult, snapshot: TaskSnapshot__Output): TaskResult {
  if (verdict === 'ack') return { kind: 'ack', taskId, snapshot };
  if (verdict === 'decline') return { kind: 'decline', taskId, message: 'simulated decline' };
  if (verdict === 'silent') return { kind: 'silent', taskId };
  return { kind: 'ack', taskId, snapshot: verdict };
}
