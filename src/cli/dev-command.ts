/**
 * `ckpt dev`: a local etcd, NATS and coordinator for trying things out,
 * running until interrupted. Everything it started stops with it.
 */
import type { Command } from 'commander';
import { resolveConfig } from '../config/index.js';
import { startLocalServers } from '../dev/index.js';
import { createLogger } from '../log/index.js';
import { runCoordinator } from '../server/run.js';

/** Adds the `dev` command. */
export function addDevCommand(program: Command): void {
  program
    .command('dev')
    .description('start a local etcd, NATS and coordinator and keep them running until interrupted')
    .option('--listen <addr>', 'gRPC listen address of the coordinator', '127.0.0.1:7070')
    .option('--log-level <level>', 'coordinator log level', 'info')
    .action(async (o: { listen: string; logLevel: string }) => {
      const servers = await startLocalServers();
      try {
        const config = resolveConfig({
          etcd: [servers.etcd.clientUrl],
          nats: [servers.nats.url],
          listen: o.listen,
          logLevel: o.logLevel,
        });
        const running = await runCoordinator(config, createLogger(config.logLevel));
        console.log(`etcd         ${servers.etcd.clientUrl}   (data in ${servers.etcd.dataDir})`);
        console.log(`NATS         ${servers.nats.url}   (monitoring ${servers.nats.monitorUrl})`);
        console.log(`coordinator  ${running.address}`);
        console.log(`metrics      http://${running.httpAddress}/metrics   (health: /healthz, /readyz)`);
        console.log('');
        console.log(
          `export CKPT_ADDRESS=${running.address} CKPT_ETCD=${servers.etcd.clientUrl} CKPT_NATS=${servers.nats.url}`,
        );
        console.log('Ctrl-C stops everything.');
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
