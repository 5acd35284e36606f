/**
 * `make bench`: starts one etcd and one NATS (JetStream) on loopback, runs
 * the benchmark scenarios in order against them, stops them, and writes
 * `bench/results/summary.json`, `summary.md` and `latency.svg` (or into
 * `--out <dir>`). Exits with 1 when a figure misses its target, 2 when a
 * scenario fails.
 *
 *   node --import tsx bench/run.ts [--only <id,...>] [--quick] [--out <dir>]
 *
 * The floor runs first: the ratios of the other scenarios are taken
 * against it. `--only` picks which of the other scenarios run, and the
 * floor with them unless none of them reads it (`state` measures its own
 * floor in the same process, `orphans` needs none); `--quick` is a short
 * smoke run with fewer repetitions. `CKPT_BENCH_CPU_PROF_DIR=<dir>` profiles the
 * coordinator processes (`lib/coordinator-child.ts`).
 */
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killLocalServersSync, startLocalServers, type LocalServers } from '../src/dev/index.js';
import { ackThroughput } from './ack-throughput.js';
import { backpressure } from './backpressure.js';
import { checkpointLatency } from './checkpoint-latency.js';
import { compression } from './compression.js';
import { dataPlane } from './data-plane.js';
import { edges } from './edges.js';
import { etcdCost } from './etcd-cost.js';
import { failover } from './failover.js';
import { floor } from './floor.js';
import { groups } from './groups.js';
import { orphans } from './orphans.js';
import { writeReport } from './lib/report.js';
import type { Row, Scenario } from './lib/row.js';
import { coresText, readSystemFacts } from './lib/system.js';
import { recovery } from './recovery.js';
import { scale } from './scale.js';
import { state } from './state.js';

/** Every scenario, in the order they run; `ownFloor`: its rows read nothing of the `floor` scenario. */
const SCENARIOS: ReadonlyArray<{ id: string; run: Scenario; ownFloor?: boolean }> = [
  { id: 'floor', run: floor },
  { id: 'checkpoint-latency', run: checkpointLatency },
  { id: 'ack-throughput', run: ackThroughput },
  { id: 'etcd-cost', run: etcdCost },
  { id: 'data-plane', run: dataPlane },
  { id: 'backpressure', run: backpressure },
  { id: 'recovery', run: recovery },
  { id: 'failover', run: failover, ownFloor: true },
  { id: 'edges', run: edges },
  { id: 'state', run: state, ownFloor: true },
  { id: 'compression', run: compression },
  { id: 'orphans', run: orphans, ownFloor: true },
  { id: 'scale', run: scale, ownFloor: true },
  { id: 'groups', run: groups, ownFloor: true },
];

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** Parsed command line. */
interface RunOptions {
  ids: readonly string[];
  quick: boolean;
  /** Where the results are written. */
  out: string;
}

/** A failed scenario. */
interface Failure {
  id: string;
  error: unknown;
}

const startedAt = Date.now();

function log(line: string): void {
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${line}`);
}

function parseOptions(argv: string[]): RunOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: RESULTS_DIR },
    },
  });
  const known = SCENARIOS.map((s) => s.id);
  const only = values.only
    ?.split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  for (const id of only ?? []) {
    if (!known.includes(id)) throw new Error(`--only: unknown scenario ${id}; known: ${known.join(', ')}`);
  }
  const needFloor = SCENARIOS.some((s) => only?.includes(s.id) !== false && s.ownFloor !== true);
  const ids = only === undefined ? known : known.filter((id) => (id === 'floor' ? needFloor : only.includes(id)));
  return { ids, quick: values.quick ?? false, out: values.out ?? RESULTS_DIR };
}

/** Runs the chosen scenarios in order; a failed one is reported and the others still run. */
async function runScenarios(servers: LocalServers, options: RunOptions): Promise<{ rows: Row[]; failures: Failure[] }> {
  const rows: Row[] = [];
  const failures: Failure[] = [];
  const system = await readSystemFacts({
    etcdClientUrl: servers.etcd.clientUrl,
    natsMonitorUrl: servers.nats.monitorUrl,
  });
  log(`${system.etcd}, ${system.nats}, ${coresText(system)}`);
  const earlier = new Map<string, Row>();
  for (const scenario of SCENARIOS.filter((s) => options.ids.includes(s.id))) {
    const began = Date.now();
    log(`${scenario.id}: start`);
    try {
      const measured = await scenario.run({
        etcd: [servers.etcd.clientUrl],
        nats: [servers.nats.url],
        serverPids: { etcd: servers.etcd.pid, nats: servers.nats.pid },
        prefix: `bench-${scenario.id}-${randomBytes(3).toString('hex')}`,
        system,
        earlier,
        quick: options.quick,
        log: (line) => log(`${scenario.id}: ${line}`),
      });
      rows.push(...measured);
      for (const row of measured) earlier.set(row.id, row);
      log(`${scenario.id}: ${measured.length} rows in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    } catch (error) {
      failures.push({ id: scenario.id, error });
      log(`${scenario.id}: FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  }
  return { rows, failures };
}

/** Stops the servers on Ctrl-C or SIGTERM, as an error would. */
function stopOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping etcd and NATS`);
      killLocalServersSync();
      process.exit(130);
    });
  }
}

/**
 * etcd as a production cluster runs it (deploy/kubernetes/base/etcd.yaml has
 * the same quota): history older than a minute is compacted every minute.
 * Without compaction, five minutes of 1,000 jobs checkpointing every second
 * fill the default 2 GiB quota, and every write is refused from then on.
 */
const BENCH_ETCD_ARGS = [
  '--auto-compaction-mode=periodic',
  '--auto-compaction-retention=1m',
  '--quota-backend-bytes=4294967296',
];

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  log(`scenarios: ${options.ids.join(', ')}${options.quick ? ' (quick)' : ''}`);
  stopOnSignals();
  const servers = await startLocalServers({ etcdArgs: BENCH_ETCD_ARGS });
  log(`etcd ${servers.etcd.clientUrl}, NATS ${servers.nats.url}`);
  let outcome: { rows: Row[]; failures: Failure[] };
  try {
    outcome = await runScenarios(servers, options);
  } finally {
    await servers.stop();
  }
  const files = await writeReport(options.out, outcome.rows);
  log(`wrote ${[files.json, files.markdown, files.svg].filter((f) => f !== undefined).join(', ')}`);
  return verdict(outcome.rows, outcome.failures);
}

/** Prints the missed targets and failed scenarios; the exit status. */
function verdict(rows: readonly Row[], failures: readonly Failure[]): number {
  const missed = rows.filter((r) => r.met === false);
  for (const r of missed) log(`target missed: ${r.id} = ${r.value} ${r.unit}, target ${r.target} ${r.unit}`);
  for (const f of failures) log(`scenario failed: ${f.id}`);
  const withTarget = rows.filter((r) => r.met !== null).length;
  log(`${withTarget - missed.length} of ${withTarget} targets met; ${failures.length} scenario(s) failed`);
  if (failures.length > 0) return 2;
  return missed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
