import test from 'ava';
import { MAX_TRIGGER_TIMES, startDelayMs, TriggerTimes } from '../../src/sdk/trigger-times.js';

test('trigger times keep the first time heard per checkpoint, ignore 0, and forget the oldest beyond the bound', (t) => {
  const times = new TriggerTimes();
  times.heard(1, 1000);
  times.heard(1, 5000);
  times.heard(2, 0);
  t.is(times.of(1), 1000, 'a repeated trigger does not move the time');
  t.is(times.of(2), undefined, 'a trigger without a time is not remembered');
  for (let id = 2; id <= MAX_TRIGGER_TIMES + 1; id += 1) times.heard(id, 1000 + id);
  t.is(times.of(1), undefined, 'the oldest is forgotten');
  t.is(times.of(2), 1002);
  t.is(times.of(MAX_TRIGGER_TIMES + 1), 1000 + MAX_TRIGGER_TIMES + 1);
});

test('the start delay is whole milliseconds, 0 when the trigger time is unknown or the clocks are skewed', (t) => {
  t.is(startDelayMs(1000, 1250.4), 250);
  t.is(startDelayMs(undefined, 1250), 0);
  t.is(startDelayMs(0, 1250), 0);
  t.is(startDelayMs(2000, 1250), 0, 'a worker clock behind the coordinator clock gives 0, not a negative');
});
