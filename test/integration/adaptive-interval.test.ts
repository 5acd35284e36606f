/**
 * An adaptive checkpoint interval against the real coordinator on real etcd
 * and NATS: checkpoints that take long move the interval up to what the
 * budget needs, GetJob shows it with its reason, the coordinator logs the
 * change, the next periodic checkpoint keeps to it, and a new coordinator
 * starts again from the base interval.
 */
import test from 'ava';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { fanInSpec, startTestCoordinator } from '../helpers/coordinator.js';
import { useServers } from '../helpers/servers.js';
import { eventually } from '../helpers/wait.js';

const servers = useServers();

/** How long the sink holds back each acknowledgement: what makes its checkpoints slow. */
const ACK_DELAY_MS = 300;

interface IntervalLog {
  fromIntervalMs: number;
  intervalMs: number;
  reason: string;
}

test('slow checkpoints move an adaptive interval up to what the budget needs', async (t) => {
  const changes: IntervalLog[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as IntervalLog & { msg?: string };
        if (entry.msg === 'checkpoint interval changed') changes.push(entry);
      },
    },
  );
  const c = await startTestCoordinator(t, servers, {}, { logger });
  // 10 % budget: checkpoints of d ms need an interval of 10 d, which the
  // 2000 ms replay target (at most 2000 - d) cannot give: the budget wins.
  const adaptive = { minIntervalMs: 100, maxIntervalMs: 60_000, budgetPermille: 100, replayTargetMs: 2000 };
  const spec = fanInSpec('job', 1, 1, { intervalMs: 200, tolerableFailures: -1, adaptive });
  await c.client.submitJob({ spec });
  const before = (await c.client.getJob({ jobId: 'job' })).job;
  t.like(before, { intervalMs: 200, intervalReason: 'no checkpoint completed yet: base interval 200 ms' });

  const slowAck = async (): Promise<'ack'> => {
    await delay(ACK_DELAY_MS);
    return 'ack';
  };
  await c.worker({ jobId: 'job', workerId: 'w', taskIds: ['src-0', 'sink-0'], spec, behaviour: { 'sink-0': slowAck } });
  await c.started('job');

  const job = await eventually(
    async () => {
      const info = (await c.client.getJob({ jobId: 'job' })).job;
      return info !== null && info.latestCheckpointId > 0 && info;
    },
    { what: 'a completed periodic checkpoint' },
  );
  t.true(job.intervalMs >= 10 * ACK_DELAY_MS, `interval ${job.intervalMs} ms`);
  const taking =
    /^checkpoints take (\d+) ms; 10% budget needs at least (\d+) ms, but replay target 2000 ms allows at most \d+ ms: the budget wins/;
  const [, durationMs, atLeastMs] = taking.exec(job.intervalReason) ?? [];
  t.truthy(durationMs, job.intervalReason);
  t.true(Number(durationMs) >= ACK_DELAY_MS);
  t.is(Number(atLeastMs), job.intervalMs);

  const logged = await eventually(() => changes[0], { what: 'the interval change in the log' });
  t.like(logged, { fromIntervalMs: 200, intervalMs: job.intervalMs, reason: job.intervalReason });

  // The next periodic trigger keeps to the new interval, counted from the previous trigger.
  const triggers = await eventually(
    async () => {
      const { checkpoints } = await c.query.listCheckpoints({ jobId: 'job' });
      const times = checkpoints.map((s) => s.triggeredAtMs).sort((a, b) => a - b);
      return times.length >= 2 && times;
    },
    { timeoutMs: 30_000, what: 'a second periodic checkpoint' },
  );
  const [first = 0, second = 0] = triggers;
  t.true(second - first >= job.intervalMs, `triggered ${second - first} ms apart, interval ${job.intervalMs} ms`);

  // A new coordinator loads the stored adaptive policy and starts again from the base interval.
  await c.restart();
  const reloaded = (await c.client.getJob({ jobId: 'job' })).job;
  t.like(reloaded, {
    state: 'JOB_STATE_RUNNING',
    intervalMs: 200,
    intervalReason: 'no checkpoint completed yet: base interval 200 ms',
  });
  t.deepEqual(reloaded?.spec?.policy?.adaptive, adaptive);
});
