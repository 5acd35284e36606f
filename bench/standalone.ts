/**
 * Runs one scenario on its own, for a quick check outside `make bench`:
 * `node --import tsx bench/data-plane.ts [--quick]` starts a local etcd and
 * NATS, runs the scenario (`--quick`: as `make bench --quick` does), prints
 * its rows as JSON and stops everything.
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startLocalServers } from '../src/dev/index.js';
import type { Row, Scenario } from './lib/row.js';
import { readSystemFacts } from './lib/system.js';

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && pathToFileURL(script).href === moduleUrl;
}

/** Runs `scenario` against fresh local servers and prints its rows; sets a failing exit code on an error. */
export async function runStandalone(name: string, scenario: Scenario): Promise<void> {
  const started = Date.now();
  const log = (line: string): void => {
    console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${name}: ${line}`);
  };
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const servers = await startLocalServers();
  try {
    const rows: Row[] = await scenario({
      etcd: [servers.etcd.clientUrl],
      nats: [servers.nats.url],
      serverPids: { etcd: servers.etcd.pid, nats: servers.nats.pid },
      prefix: `bench-${name}-${randomBytes(3).toString('hex')}`,
      system: await readSystemFacts({ etcdClientUrl: servers.etcd.clientUrl, natsMonitorUrl: servers.nats.monitorUrl }),
      earlier: new Map(),
      quick: values.quick,
      log,
    });
    for (const row of rows) console.log(JSON.stringify(row));
  } catch (err) {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  } finally {
    await servers.stop();
  }
}
