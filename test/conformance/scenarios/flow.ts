/**
 * Scenarios of a slow reader: flow control as seen on NATS (the writer
 * stays within the window the reader's credits grant), and the alignment
 * timeout (aligned checkpoints that wait behind a window of records are
 * taken unaligned, their pieces holding the in-flight records).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Msg, Subscription } from '@nats-io/nats-core';
import { decodeCredit } from '../../../src/bus/index.js';
import { ScenarioFailure, type ScenarioRun } from '../harness.js';
import type { Scenario } from '../scenario.js';

/** What the runner sees of one edge on NATS: its records and its reader's credits, per epoch. */
class EdgeWatch {
  readonly #records = new Map<number, number>();
  readonly #credited = new Map<number, number>();
  readonly #subscriptions: Subscription[] = [];
  credits = 0;
  window = 0;
  /** The most records of an epoch seen beyond the latest credit's processed count of that epoch. */
  maxAhead = 0;

  constructor(s: ScenarioRun, from: string, to: string) {
    const nc = s.suite.nc;
    this.#subscriptions.push(
      nc.subscribe(`${s.controlPrefix}.data.${from}.${to}`, { callback: (_err, msg) => this.#onRecord(msg) }),
      nc.subscribe(`${s.controlPrefix}.credit.${from}.${to}`, { callback: (_err, msg) => this.#onCredit(msg) }),
    );
  }

  /** Records of the epoch seen so far. */
  records(epoch: number): number {
    return this.#records.get(epoch) ?? 0;
  }

  /** Records of the epoch seen beyond its latest credit (all of them before a credit). */
  ahead(epoch: number): number {
    return this.records(epoch) - (this.#credited.get(epoch) ?? 0);
  }

  /** Starts measuring `maxAhead` afresh. */
  resetMax(): void {
    this.maxAhead = 0;
  }

  close(): void {
    for (const sub of this.#subscriptions) sub.unsubscribe();
  }

  #onRecord(msg: Msg): void {
    if (msg.headers?.get('ckpt-barrier') === '1') return;
    const epoch = Number(msg.headers?.get('ckpt-epoch'));
    if (!Number.isSafeInteger(epoch)) return;
    const records = (this.#records.get(epoch) ?? 0) + 1;
    this.#records.set(epoch, records);
    const credited = this.#credited.get(epoch);
    if (credited !== undefined) this.maxAhead = Math.max(this.maxAhead, records - credited);
  }

  #onCredit(msg: Msg): void {
    const decoded = decodeCredit(msg.data);
    if ('error' in decoded) return;
    const { epoch, processed, window } = decoded.credit;
    this.credits += 1;
    this.window = window;
    this.#credited.set(epoch, Math.max(this.#credited.get(epoch) ?? 0, processed));
  }
}

export const flowControl: Scenario = {
  name: 'flow-control',
  summary:
    'a source as fast as it can go and a slow sink in two worker processes: once the sink sends credits, ' +
    'the source never runs more than about a window ahead of them on NATS, and checkpoints still commit',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit({
      tasks: {
        src: { kind: 'source', rate: 0, limit: 0, keys: 16 },
        sink: { kind: 'sink', inputs: ['src'], processDelayMs: 1 },
      },
      policy: { intervalMs: 500, timeoutMs: 30_000 },
    });
    const watch = new EdgeWatch(s, 'src', 'sink');
    try {
      s.worker('reader', ['sink']);
      s.worker('writer', ['src']);
      await s.waitFor("the sink's first credit", 20_000, () => watch.credits > 0);
      const epoch = s.epoch;
      await s.waitFor('two windows of records on the edge', 30_000, () => watch.records(epoch) >= 2 * watch.window);
      // What the writer sent before the reader's first credit reached it is not held back: let the reader catch up.
      await s.waitFor('the reader within a window of the writer', 60_000, () => watch.ahead(epoch) <= watch.window);
      watch.resetMax();
      const before = watch.records(epoch);
      await delay(3000);
      const during = watch.records(epoch) - before;
      if (during < watch.window) {
        throw new ScenarioFailure(
          `only ${during} records on the edge in 3 s: the writer stalled (window ${watch.window})`,
        );
      }
      // The writer stops at a window; a credit it saw may reach the runner a step later.
      const bound = watch.window + Math.ceil(watch.window / 4) + 16;
      if (watch.maxAhead > bound) {
        throw new ScenarioFailure(
          `the writer ran ${watch.maxAhead} records ahead of its reader's credits, whose window is ${watch.window}`,
        );
      }
      s.suite.log(
        `flow-control: ${during} records in 3 s, at most ${watch.maxAhead} ahead of a window of ${watch.window}`,
      );
      await s.waitCommits(2, 30_000);
    } finally {
      watch.close();
    }
  },
};

/** Records the source emits in the aligned-timeout scenario. */
const TIMEOUT_LIMIT = 4000;

export const alignedTimeout: Scenario = {
  name: 'aligned-timeout',
  summary:
    'ALIGNED with aligned_checkpoint_timeout_ms and a sink a window of records behind: its checkpoints are ' +
    'taken unaligned, their pieces say they hold in-flight records; the sink SIGKILLed, the restore reads ' +
    'them back and the sink ends with every record exactly once',
  async run(s) {
    await s.startCoordinators(1);
    await s.submit({
      tasks: {
        src: { kind: 'source', rate: 0, limit: TIMEOUT_LIMIT, keys: 16 },
        sink: { kind: 'sink', inputs: ['src'], processDelayMs: 1 },
      },
      policy: { mode: 'CHECKPOINT_MODE_ALIGNED', alignedCheckpointTimeoutMs: 100, intervalMs: 300, timeoutMs: 30_000 },
    });
    s.worker('writer', ['src']);
    const reader = s.worker('reader', ['sink']);
    await s.waitFor('a committed checkpoint whose sink piece holds in-flight records', 30_000, async () =>
      sinkHoldsInFlight(s, s.latest),
    );
    const epoch = s.epoch;
    await reader.kill();
    await s.waitEpochAbove(epoch);
    const restored = (await s.waitRestored(s.epoch, 30_000)).find((r) => r.task === 'sink');
    if (restored !== undefined && !(await sinkHoldsInFlight(s, restored.checkpoint))) {
      s.suite.log(`aligned-timeout: the sink restored checkpoint ${restored.checkpoint}, which timed out nowhere`);
    }
    const want = { count: TIMEOUT_LIMIT, sum: (TIMEOUT_LIMIT * (TIMEOUT_LIMIT + 1)) / 2 };
    await s.waitFor(`the sink's committed report of count ${want.count}`, 60_000, () =>
      s.reports.some((r) => r.task === 'sink' && r.event === 'committed' && r.count >= want.count),
    );
    const last = s.reports.filter((r) => r.task === 'sink' && r.event === 'committed').at(-1);
    if (last === undefined || last.count !== want.count || last.sum !== want.sum) {
      throw new ScenarioFailure(
        `the sink ended with count ${last?.count} sum ${last?.sum}, expected count ${want.count} sum ${want.sum}`,
      );
    }
  },
};

/** True when checkpoint `id` is committed and the sink's piece in it holds in-flight records. */
async function sinkHoldsInFlight(s: ScenarioRun, id: number): Promise<boolean> {
  if (id === 0) return false;
  const manifest = await s.manifest(id);
  return manifest?.tasks.some((t) => t.taskId === 'sink' && t.state?.inFlightRecords === true) === true;
}
