#!/usr/bin/env node
/**
 * The `ckpt` command line. The only module that handles process signals
 * and writes to the console.
 */
import { Command } from 'commander';
import { errorInfo, isServiceError } from '../client/index.js';
import { addClientCommands } from './client-commands.js';
import { addSavepointCommands } from './savepoint-commands.js';
import { addCoordinatorCommand } from './coordinator-command.js';
import { addDevCommand } from './dev-command.js';

/** Builds the program; exported for tests of the argument parsing. */
export function buildProgram(): Command {
  const program = new Command('ckpt')
    .description('distributed checkpoint coordinator')
    .option(
      '--address <host:port,...>',
      'coordinator address, or several comma-separated: calls follow the leader among them',
      process.env.CKPT_ADDRESS ?? '127.0.0.1:7070',
    )
    .option(
      '--token <token>',
      "bearer token: the coordinator's --auth-token or a token of its access policy (CKPT_AUTH_TOKEN)",
      process.env.CKPT_AUTH_TOKEN,
    )
    .option('--token-file <file>', 'read the bearer token from a file (CKPT_TOKEN_FILE)', process.env.CKPT_TOKEN_FILE)
    .option('--tls', 'connect with TLS, checking the certificate against the system CAs (CKPT_TLS=true)')
    .option('--tls-ca <file>', "PEM CA of the coordinators' certificates; implies --tls (CKPT_TLS_CA)")
    .option('--tls-cert <file>', 'PEM client certificate for mutual TLS; implies --tls (CKPT_TLS_CLIENT_CERT)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert (CKPT_TLS_CLIENT_KEY)')
    .option(
      '--tls-server-name <name>',
      'name the certificates must be valid for; lets calls follow leaders not in --address (CKPT_TLS_SERVER_NAME)',
    )
    .option('--json', 'print the result as one JSON document instead of text (watch: one JSON line per event)')
    .option('--progress', 'report progress on stderr while waiting (default: when stderr is a terminal)')
    .configureHelp({ showGlobalOptions: true });
  addCoordinatorCommand(program);
  addClientCommands(program);
  addSavepointCommands(program);
  addDevCommand(program);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (isServiceError(err)) {
      const info = errorInfo(err);
      console.error(`ckpt: ${err.details} (${info?.reason ?? 'grpc status ' + String(err.code)})`);
    } else {
      console.error(`ckpt: ${err instanceof Error ? err.message : String(err)}`);
    }
    process.exitCode = 1;
  });
