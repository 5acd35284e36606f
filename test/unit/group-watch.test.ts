/**
 * The watch of every job over several job groups (`GroupWatch`), with
 * in-memory sources standing for each group's leader: live once every
 * group is watched, a group's part moves to the group's new source when it
 * ends or when told, without ending the watch, and nothing from a source
 * it left is passed on.
 */
import test from 'ava';
import type { CheckpointSummary__Output } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { QuerySource } from '../../src/server/dashboard-sources.js';
import { GroupWatch } from '../../src/server/group-watch.js';
import { eventually } from '../helpers/wait.js';

/** A leader's events as a source: `emit` sends one, `end` ends its watches, `open` makes them live. */
function leader(name: string, liveAtOnce = true) {
  const watchers = new Set<{
    listener: (s: CheckpointSummary__Output) => void;
    ended: () => void;
    live?: () => void;
  }>();
  const source = {
    servedBy: 'leader',
    watch(
      _jobId: string | undefined,
      listener: (s: CheckpointSummary__Output) => void,
      ended: () => void,
      live?: () => void,
    ) {
      const w = { listener, ended, ...(live === undefined ? {} : { live }) };
      watchers.add(w);
      if (liveAtOnce) live?.();
      return () => watchers.delete(w);
    },
  } as unknown as QuerySource;
  return {
    name,
    source,
    get watchers() {
      return watchers.size;
    },
    emit: (checkpointId: number) => {
      for (const w of [...watchers]) w.listener({ jobId: name, checkpointId } as CheckpointSummary__Output);
    },
    end: () => {
      for (const w of [...watchers]) {
        watchers.delete(w);
        w.ended();
      }
    },
    open: () => {
      for (const w of watchers) w.live?.();
    },
  };
}

test('live once every group is watched; a group whose leader changes is watched at the new one, the watch going on', async (t) => {
  const a = leader('a');
  const b = leader('b', false);
  const c = leader('c');
  const current = [a, b];
  let changed: ((group: number) => void) | undefined;
  const seen: string[] = [];
  let live = 0;
  const watch = new GroupWatch({
    groups: 2,
    source: (g) => current[g]!.source,
    listener: (s) => seen.push(`${s.jobId}${s.checkpointId}`),
    live: () => (live += 1),
    changes: (f) => {
      changed = f;
      return () => (changed = undefined);
    },
  });
  t.teardown(() => watch.stop());
  t.is(live, 0, 'group 1 is not watched yet');
  b.open();
  t.is(live, 1);
  a.emit(1);
  b.emit(1);

  // Group 1's leader ends its watch; the new one is c: the part opens there after a pause.
  current[1] = c;
  b.end();
  b.emit(2);
  await eventually(() => c.watchers === 1 || undefined, { what: 'group 1 watched at c' });
  c.emit(1);

  // Group 0 moves to b while a still streams: told of it, the part leaves a at once.
  current[0] = b;
  changed?.(0);
  t.is(a.watchers, 0, 'a is left');
  t.is(b.watchers, 1);
  a.emit(2);
  b.emit(3);
  t.deepEqual(seen, ['a1', 'b1', 'c1', 'b3']);
  t.is(live, 1, 'live is said once');

  watch.stop();
  t.is(b.watchers + c.watchers, 0, 'stop ends every part');
  t.is(changed, undefined);
});

test('a group without a leader at the start refuses the watch; one that loses its leader is tried again until one answers', async (t) => {
  const a = leader('a');
  t.throws(
    () =>
      new GroupWatch({
        groups: 2,
        source: (g) => {
          if (g === 1) throw new Error('no leader of job group 1 is known');
          return a.source;
        },
        listener: () => {},
      }),
    { message: /no leader of job group 1/ },
  );
  t.is(a.watchers, 0, 'nothing stays open');

  const b = leader('b');
  let known = true;
  let refused = 0;
  const watch = new GroupWatch({
    groups: 1,
    source: () => {
      if (known) return b.source;
      refused += 1;
      throw new Error('no leader known');
    },
    listener: () => {},
  });
  t.teardown(() => watch.stop());
  known = false;
  b.end();
  // Two lookups refused: the part tried again after a refusal, and opened nothing meanwhile.
  await eventually(() => refused >= 2 || undefined, { what: 'the leader looked up twice while none is known' });
  t.is(b.watchers, 0);
  known = true;
  await eventually(() => b.watchers === 1 || undefined, { what: 'watched again once a leader is known' });
});
