/**
 * `ckpt dev`: a local etcd, NATS and coordinator for trying things out,
 * running until interrupted. Everything it started stops with it. The
 * coordinator's HTTP port serves the dashboard and the metrics.
 */
import type { Command } from 'commander';
import type { LocalServers } from '../dev/index.js';
import type { RunningCoordinator } from '../server/run.js';
import { startCoordinator } from './coordinator-command.js';
import { globalFlags, print, progressWanted, type GlobalFlags } from './flags.js';
import { elapsed, whileWaiting, type ProgressReport } from './progress.js';

/** Adds the `dev` command. */
export function addDevCommand(program: Command): void {
  program
    .command('dev')
    .description(
      'start a local etcd, NATS and coordinator, print how to reach them (the dashboard too) and keep them running until interrupted',
    )
    .option('--listen <addr>', 'gRPC listen address of the coordinator', '127.0.0.1:7070')
    .option('--log-level <level>', 'coordinator log level', 'info')
    .action(async (o: { listen: string; logLevel: string }, cmd: Command) => {
      const f = globalFlags(cmd);
      const starting = (what: string): ProgressReport | undefined =>
        progressWanted(f) ? (ms) => `starting ${what}, ${elapsed(ms)}` : undefined;
      const { startLocalServers } = await import('../dev/index.js');
      const servers = await whileWaiting(startLocalServers(), starting('etcd and NATS'), { firstAfterMs: 0 });
      try {
        const input = {
          etcd: [servers.etcd.clientUrl],
          nats: [servers.nats.url],
          listen: o.listen,
          logLevel: o.logLevel,
        };
        const { running } = await whileWaiting(startCoordinator(input), starting('the coordinator'), {
          firstAfterMs: 0,
        });
        printAddresses(f, servers, running);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await running.stop();
      } finally {
        await servers.stop();
      }
    });
}

/** What `dev` started and the environment that points the CLI and workers at it, as text or one JSON document. */
function printAddresses(f: GlobalFlags, servers: LocalServers, running: RunningCoordinator): void {
  const http = `http://${running.httpAddress}`;
  const env = {
    CKPT_ADDRESS: running.address,
    CKPT_ETCD: servers.etcd.clientUrl,
    CKPT_NATS: servers.nats.url,
    CKPT_DASHBOARD: http,
  };
  const started = {
    etcd: { url: servers.etcd.clientUrl, dataDir: servers.etcd.dataDir },
    nats: { url: servers.nats.url, monitorUrl: servers.nats.monitorUrl },
    coordinator: running.address,
    dashboard: `${http}/`,
    metrics: `${http}/metrics`,
    env,
  };
  print(f, started, () =>
    [
      `etcd         ${started.etcd.url}   (data in ${started.etcd.dataDir})`,
      `NATS         ${started.nats.url}   (monitoring ${started.nats.monitorUrl})`,
      `coordinator  ${started.coordinator}`,
      `dashboard    ${started.dashboard}`,
      `metrics      ${started.metrics}   (health: /healthz, /readyz)`,
      '',
      `export ${Object.entries(env)
        .map(([name, value]) => `${name}=${value}`)
        .join(' ')}`,
    ].join('\n'),
  );
  // With --json, stdout holds the one document.
  (f.json === true ? console.error : console.log)('Ctrl-C stops everything.');
}
