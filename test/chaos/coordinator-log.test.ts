/**
 * Figures read from the coordinators' log lines: pure functions, no servers.
 */
import test from 'ava';
import {
  logFigures,
  parseCoordinatorLine,
  spread,
  timesToEveryJobCommit,
  timesToNextCommit,
  type CoordinatorEvent,
} from './coordinator-log.js';

function line(time: number, msg: string, extra: Record<string, unknown> = {}): CoordinatorEvent {
  const event = parseCoordinatorLine(JSON.stringify({ level: 30, time, msg, jobId: 'j', ...extra }), 0);
  if (event === undefined) throw new Error(`not parsed: ${msg}`);
  return event;
}

test('recoveries are timed from detection to every task ready; resumes from the start or the first detection', (t) => {
  const events = [
    line(0, 'coordinator started'),
    line(500, 'every task ready: job started', { epoch: 1 }),
    line(1000, 'job recovery started', { why: 'worker left' }),
    line(1200, 'job recovery started', { why: 'again' }),
    line(1800, 'every task ready: job started', { epoch: 2 }),
    line(2000, 'checkpoint completed', { checkpointId: 1 }),
    line(2100, 'checkpoint aborted', { checkpointId: 2, reason: 'ABORT_REASON_TIMEOUT' }),
    line(3000, 'coordinator started'),
    line(3400, 'every task ready: job started', { epoch: 2 }),
    // A deposed leader detects a failure but cannot raise the epoch; the new leader resumes.
    line(4000, 'job recovery started', { why: 'sessions timed out' }),
    line(4100, 'coordinator started'),
    line(4600, 'every task ready: job started', { epoch: 2 }),
  ];
  const figures = logFigures(events, 'j', 100);
  t.deepEqual(figures.recoveryMs, [800]);
  t.deepEqual(figures.resumeMs, [400, 600]);
  t.is(figures.recoveryStarts, 3);
  t.is(figures.completed, 1);
  t.is(figures.longestCommitGapMs, 1900);
  t.deepEqual(figures.abortedByReason, { TIMEOUT: 1 });
  t.is(parseCoordinatorLine('not json', 0), undefined);
  t.deepEqual(spread([5, 1, 3, 2]), { min: 1, median: 2, max: 5 });
});

test('a fail-over is timed from the kill to the next commit of the job by another coordinator', (t) => {
  const commit = (time: number, coordinator: number, jobId = 'j'): CoordinatorEvent => ({
    ...line(time, 'checkpoint completed', { checkpointId: time, jobId }),
    coordinator,
  });
  const events = [commit(1000, 0), commit(1050, 1), commit(2500, 0, 'other'), commit(3200, 2)];
  const kills = [
    { at: 900, coordinator: 0 },
    { at: 2000, coordinator: 1 },
    { at: 4000, coordinator: 2 },
  ];
  t.deepEqual(timesToNextCommit(events, 'j', kills), [150, 1200]);
});

test('with several jobs, a fail-over lasts until every job committed through another coordinator', (t) => {
  const commit = (time: number, coordinator: number, jobId: string): CoordinatorEvent => ({
    ...line(time, 'checkpoint completed', { checkpointId: time, jobId }),
    coordinator,
  });
  const events = [commit(1100, 1, 'a'), commit(1700, 1, 'b'), commit(1200, 0, 'b'), commit(2600, 2, 'a')];
  const kills = [
    { at: 1000, coordinator: 0 },
    // After this kill, job b never commits again: the kill is left out.
    { at: 2000, coordinator: 1 },
  ];
  t.deepEqual(timesToEveryJobCommit(events, ['a', 'b'], kills), [700]);
  t.deepEqual(timesToEveryJobCommit(events, ['a'], kills), [100, 600]);
});
