/**
 * The rules of what a worker believes from NATS (bus.proto), as pure
 * logic: terms held until the session confirms them, checkpoint ids
 * plausible only near confirmed ones, triggers taken once per source,
 * completions only for accepted acknowledgements, aborts capped, junk
 * dropped and logged once in a while.
 */
import test from 'ava';
import { pino } from 'pino';
import {
  checkBarrier,
  CheckpointBeliefs,
  controlMessageCodecs,
  ControlIntake,
  DropLog,
  guardedCallback,
  MAX_CHECKPOINT_ID_AHEAD,
  MAX_HELD_CONTROL_MESSAGES,
  TermGate,
  type Drop,
} from '../../src/bus/index.js';
import type { Msg } from '@nats-io/nats-core';
import type { AbortReason } from '../../src/gen/ckpt/v1/AbortReason.js';

const codecs = controlMessageCodecs();

test('a term gate drops lower terms, holds higher ones (the oldest evicted first) and releases them in order on confirmation', (t) => {
  const gate = new TermGate<string>(5, 3);
  t.deepEqual(gate.offer(4, 'old'), { verdict: 'stale' });
  t.deepEqual(gate.offer(5, 'now'), { verdict: 'now' });
  t.deepEqual(gate.offer(7, 'a'), { verdict: 'held' });
  t.deepEqual(gate.offer(6, 'b'), { verdict: 'held' });
  t.deepEqual(gate.offer(7, 'c'), { verdict: 'held' });
  t.deepEqual(gate.offer(7, 'd'), { verdict: 'held', evicted: 'a' });
  t.is(gate.confirmed, 5, 'nothing from NATS raises the term');
  t.deepEqual(gate.confirm(5), { released: [], dropped: [] }, 'the same term releases nothing');
  t.deepEqual(gate.confirm(7), { released: ['c', 'd'], dropped: ['b'] });
  t.is(gate.held, 0);
  t.deepEqual(gate.offer(6, 'late'), { verdict: 'stale' });
  t.deepEqual(gate.confirm(3), { released: [], dropped: [] }, 'a lower term changes nothing');
  t.is(gate.confirmed, 7);
  t.is(MAX_HELD_CONTROL_MESSAGES, 64);
});

test('checkpoint ids are plausible from 1 to 10000 above the highest confirmed one', (t) => {
  const beliefs = new CheckpointBeliefs(3);
  t.false(beliefs.plausible(0));
  t.true(beliefs.plausible(MAX_CHECKPOINT_ID_AHEAD));
  t.false(beliefs.plausible(MAX_CHECKPOINT_ID_AHEAD + 1));
  beliefs.confirmSession({ checkpointId: 40, nextCheckpointId: 0 });
  t.is(beliefs.highestConfirmed, 40, 'a next id of 0 is not given');
  beliefs.confirmSession({ checkpointId: 7, nextCheckpointId: 1001 });
  t.is(beliefs.highestConfirmed, 1000, 'every id below the next one');
  beliefs.confirm(Number.MAX_SAFE_INTEGER + 1);
  beliefs.confirm(12.5);
  t.is(beliefs.highestConfirmed, 1000, 'no unsafe or fractional id');
  t.true(beliefs.plausible(11_000));
  t.false(beliefs.plausible(11_001));
  t.false(beliefs.plausible(Number.MAX_SAFE_INTEGER));
  beliefs.confirm(500);
  t.is(beliefs.highestConfirmed, 1000, 'never lowered');
});

test('a source takes a trigger above the last it took; a restore forgets; a decline is worth it once and above the confirmed ids', (t) => {
  const beliefs = new CheckpointBeliefs(1);
  beliefs.confirm(10);
  t.true(beliefs.takes('a', 11));
  beliefs.took('a', 11);
  t.false(beliefs.takes('a', 11));
  t.true(beliefs.takes('b', 11), 'per source');
  t.true(beliefs.mayDecline(11));
  t.false(beliefs.mayDecline(11), 'once per id');
  t.false(beliefs.mayDecline(9), 'a confirmed id is not declined');
  beliefs.restored();
  t.true(beliefs.takes('a', 11), 'a restore forgets what sources took');
  t.true(beliefs.mayDecline(11));
  beliefs.took('a', 20);
  beliefs.enterEpoch(2);
  t.is(beliefs.epoch, 2);
  t.true(beliefs.takes('a', 12), 'so does a new epoch');
});

test('a completion counts once, in its epoch, for an acknowledgement the coordinator accepted; it waits while one is answered', (t) => {
  const beliefs = new CheckpointBeliefs(4);
  t.is(beliefs.completeVerdict(4, 12), 'drop', 'never acknowledged');
  beliefs.ackSent(4, 12);
  beliefs.ackSent(4, 12);
  t.is(beliefs.completeVerdict(4, 12), 'wait');
  beliefs.ackAnswered(4, 12, true);
  t.is(beliefs.completeVerdict(4, 12), 'wait', 'a second send of the checkpoint is still unanswered');
  beliefs.ackAnswered(4, 12, true);
  t.is(beliefs.completeVerdict(3, 12), 'drop', 'another epoch');
  t.is(beliefs.completeVerdict(4, 12), 'count');
  t.is(beliefs.completeVerdict(4, 12), 'drop', 'once');
  t.is(beliefs.highestConfirmed, 12, 'an accepted acknowledgement confirms its id');
  beliefs.ackSent(4, 13);
  beliefs.ackAnswered(4, 13, false);
  t.is(beliefs.completeVerdict(4, 13), 'drop', 'refused');
  t.is(beliefs.highestConfirmed, 12);
  beliefs.ackSent(4, 14);
  beliefs.enterEpoch(5);
  beliefs.ackAnswered(5, 14, true);
  t.is(beliefs.completeVerdict(5, 14), 'drop', 'acknowledged in another epoch');
  beliefs.ackSent(3, 15);
  t.is(beliefs.completeVerdict(5, 15), 'drop', 'a send of an old epoch is not remembered');
});

test('an abort counts in its epoch for a plausible id; a coordinator restart aborts up to the highest plausible id', (t) => {
  const beliefs = new CheckpointBeliefs(2);
  beliefs.confirm(100);
  t.deepEqual(beliefs.abortRange(2, 105, false), { checkpointId: 105, upTo: false });
  t.is(beliefs.abortRange(1, 105, false), undefined);
  t.is(beliefs.abortRange(2, 0, false), undefined);
  t.is(beliefs.abortRange(2, 100 + MAX_CHECKPOINT_ID_AHEAD + 1, false), undefined);
  t.deepEqual(beliefs.abortRange(2, 2 ** 53, true), { checkpointId: 100 + MAX_CHECKPOINT_ID_AHEAD, upTo: true });
  t.deepEqual(beliefs.abortRange(2, 150, true), { checkpointId: 150, upTo: true });
});

/** An intake of job `job` in epoch 3 and term 7 that records what it hands on and drops. */
function intake() {
  const handled: string[] = [];
  const drops: Drop[] = [];
  const i = new ControlIntake({
    jobId: 'job',
    epoch: 3,
    term: 7,
    handlers: {
      trigger: (m) => handled.push(`trigger ${m.checkpointId}`),
      complete: (m) => handled.push(`complete ${m.checkpointId}`),
      abort: (m, range) => handled.push(`abort ${range.checkpointId}${range.upTo ? '-' : ''}`),
      recover: (m) => handled.push(`recover ${m.epoch}`),
    },
    onDrop: (d) => drops.push(d),
  });
  return { i, handled, drops, reasons: () => drops.map((d) => `${d.kind}:${d.reason}`) };
}

test('the intake drops junk, other jobs, stale terms and other epochs, and holds newer terms', (t) => {
  const { i, handled, reasons } = intake();
  const trigger = (m: object) => codecs.trigger.encode({ jobId: 'job', checkpointId: 5, epoch: 3, term: 7, ...m });
  i.receive('trigger', Uint8Array.of(0xff, 0xff, 0xff));
  i.receive('trigger', trigger({ jobId: 'other' }));
  i.receive('trigger', trigger({ term: 6 }));
  i.receive('trigger', trigger({ epoch: 4 }));
  i.receive('trigger', trigger({ checkpointId: 2 ** 53 }));
  i.receive('trigger', trigger({}));
  i.receive('trigger', trigger({ term: 8, checkpointId: 6 }));
  i.receive('recover', codecs.recover.encode({ jobId: 'job', epoch: 2 ** 53, checkpointId: 1, term: 7 }));
  t.deepEqual(handled, ['trigger 5', `recover ${2 ** 53}`]);
  t.deepEqual(reasons(), [
    'trigger:undecodable',
    'trigger:other-job',
    'trigger:stale-term',
    'trigger:other-epoch',
    'trigger:implausible-id',
  ]);
  t.is(i.beliefs.epoch, 3, 'a recover changes no epoch');
  i.confirmTerm(8);
  t.deepEqual(handled.slice(2), ['trigger 6'], 'the held trigger, once its term is confirmed');
  t.is(i.term, 8);
});

test('the intake lets a completion wait for the answer to its acknowledgement, and decides it then', (t) => {
  const { i, handled, reasons } = intake();
  const complete = (checkpointId: number) => codecs.complete.encode({ jobId: 'job', checkpointId, epoch: 3, term: 7 });
  i.ackSent(3, 9);
  i.ackSent(3, 10);
  i.receive('complete', complete(9));
  i.receive('complete', complete(10));
  i.receive('complete', complete(2 ** 53 - 1));
  t.deepEqual(handled, []);
  i.ackAnswered(3, 9, true);
  i.ackAnswered(3, 10, false);
  t.deepEqual(handled, ['complete 9']);
  t.deepEqual(reasons(), ['complete:not-acknowledged', 'complete:not-acknowledged']);
  i.receive('complete', complete(9));
  t.deepEqual(handled, ['complete 9'], 'a replay is dropped');
});

test('a completion of an id an abort named never counts, also one waiting for its answer; a restart abort forgets nothing', (t) => {
  const { i, handled, reasons } = intake();
  const complete = (checkpointId: number) => codecs.complete.encode({ jobId: 'job', checkpointId, epoch: 3, term: 7 });
  const abort = (checkpointId: number, reason: AbortReason) =>
    codecs.abort.encode({ jobId: 'job', checkpointId, epoch: 3, term: 7, reason });
  for (const id of [4, 5, 6, 8]) i.ackSent(3, id);
  for (const id of [4, 5, 6]) i.ackAnswered(3, id, true);
  i.receive('complete', complete(8));
  i.receive('abort', abort(5, 'ABORT_REASON_DECLINED'));
  i.receive('abort', abort(8, 'ABORT_REASON_TIMEOUT'));
  i.receive('complete', complete(5));
  i.ackAnswered(3, 8, true);
  i.receive('complete', complete(8));
  i.receive('abort', abort(9, 'ABORT_REASON_COORDINATOR_RESTART'));
  i.receive('complete', complete(4));
  i.receive('complete', complete(6));
  t.deepEqual(handled, ['abort 5', 'abort 8', 'abort 9-', 'complete 4', 'complete 6']);
  t.deepEqual(reasons(), ['complete:aborted', 'complete:not-acknowledged', 'complete:not-acknowledged']);
});

test('what a handler throws is reported as a drop, never thrown on', (t) => {
  const drops: Drop[] = [];
  const i = new ControlIntake({
    jobId: 'job',
    epoch: 1,
    term: 1,
    handlers: {
      trigger: () => {
        throw new Error('boom');
      },
      complete: () => {},
      abort: () => {},
      recover: () => {},
    },
    onDrop: (d) => {
      drops.push(d);
      throw new Error('the drop handler fails too');
    },
  });
  t.notThrows(() => i.receive('trigger', codecs.trigger.encode({ jobId: 'job', checkpointId: 1, epoch: 1, term: 1 })));
  t.like(drops[0], { kind: 'trigger', reason: 'failed' });
});

test('a barrier is believed only from its subject’s sender, of the worker’s job and epoch, with a plausible id', (t) => {
  const beliefs = new CheckpointBeliefs(2);
  const edge = { from: 'a', to: 'b' };
  const barrier = (m: object) =>
    codecs.barrier.encode({ jobId: 'job', checkpointId: 3, epoch: 2, fromTaskId: 'a', records: 0, ...m });
  t.true(checkBarrier(barrier({}), edge, 2, 'job', beliefs).ok);
  t.true(checkBarrier(barrier({}), edge, undefined, 'job', beliefs).ok);
  const reason = (bytes: Uint8Array, headerEpoch = 2): string | undefined => {
    const check = checkBarrier(bytes, edge, headerEpoch, 'job', beliefs);
    return check.ok ? undefined : check.reason;
  };
  t.is(reason(Uint8Array.of(0x0a, 0xff)), 'undecodable');
  t.is(reason(barrier({ jobId: 'other' })), 'other-job');
  t.is(reason(barrier({ fromTaskId: 'mallory' })), 'other-sender');
  t.is(reason(barrier({ epoch: 1 })), 'other-epoch');
  t.is(reason(barrier({}), 1), 'other-epoch');
  t.is(reason(barrier({ checkpointId: 2 ** 53 })), 'implausible-id');
});

test('the drop log writes the first drop of a kind and then one line per interval with the count', (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as never) });
  let now = 0;
  const log = new DropLog(logger, { intervalMs: 10_000, now: () => now });
  for (let i = 0; i < 1000; i += 1) {
    now = i * 20;
    log.drop({ kind: 'trigger', reason: i % 2 === 0 ? 'undecodable' : 'other-job' });
    log.drop({ kind: 'trigger', reason: 'other-epoch' });
  }
  t.is(lines.length, 4, 'per kind and severity: the first drop, then one after 10 s');
  t.like(lines[0], { level: 40, kind: 'trigger', dropped: 1, reasons: { undecodable: 1 } });
  t.like(lines[1], { level: 20, kind: 'trigger', dropped: 1, reasons: { 'other-epoch': 1 } });
  t.like(lines[2], { level: 40, dropped: 500, reasons: { undecodable: 250, 'other-job': 250 } });
  log.flush();
  const total = lines.filter((l) => l.level === 40).reduce((n, l) => n + Number(l.dropped), 0);
  t.is(total, 1000, 'every junk drop counted once');
  t.true(DropLog.routine('stale-term'));
  t.false(DropLog.routine('implausible-id'));
});

test('a guarded callback lets nothing escape into the NATS reader', (t) => {
  const errors: unknown[] = [];
  const callback = guardedCallback(
    () => {
      throw new Error('handler');
    },
    (err) => {
      errors.push(err);
      throw new Error('and the error handler');
    },
  );
  t.notThrows(() => callback(null, {} as Msg));
  t.notThrows(() => callback(new Error('subscription'), {} as Msg));
  t.is(errors.length, 3);
});
