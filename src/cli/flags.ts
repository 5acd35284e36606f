/**
 * The program-wide flags every command reads (`--address`, `--token`,
 * `--json`, `--progress`), the clients they make, how a command prints its
 * result with them, and the parsers of the arguments several commands share.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { readSecretFile } from '../bus/index.js';
import {
  clientTlsFromEnv,
  createCoordinatorClient,
  createQueryClient,
  type ClientOptions,
  type ClientTlsOptions,
  type CoordinatorClient,
  type QueryClient,
} from '../client/index.js';

/** The options given before the command name. */
export interface GlobalFlags {
  address: string;
  token?: string;
  tokenFile?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  json?: boolean;
  progress?: boolean;
}

/** The program-wide flags as the command `cmd` sees them. */
export function globalFlags(cmd: Command): GlobalFlags {
  return cmd.optsWithGlobals<GlobalFlags>();
}

/** Client options from the flags: the bearer token and TLS, if any. */
function clientOptions(flags: GlobalFlags): ClientOptions {
  const token = tokenOf(flags);
  const options: ClientOptions = token === undefined ? {} : { token };
  const tls = tlsOptions(flags);
  if (tls !== undefined) options.tls = tls;
  return options;
}

/** The bearer token of --token or --token-file (each over its environment variable); both is an error. */
function tokenOf(flags: GlobalFlags): string | undefined {
  const file = flags.tokenFile === '' ? undefined : flags.tokenFile;
  const given = flags.token === '' ? undefined : flags.token;
  if (file === undefined) return given;
  if (given !== undefined) throw new InvalidArgumentError('--token and --token-file exclude each other; give one');
  const token = readSecretFile(file, '--token-file').trim();
  if (token === '') throw new InvalidArgumentError(`--token-file: ${file} is empty`);
  return token;
}

/** TLS from the flags, each over its environment variable; any TLS flag turns TLS on. */
function tlsOptions(flags: GlobalFlags): ClientTlsOptions | undefined {
  const fromFlags: ClientTlsOptions = {};
  if (flags.tlsCa !== undefined) fromFlags.caFile = flags.tlsCa;
  if (flags.tlsCert !== undefined) fromFlags.certFile = flags.tlsCert;
  if (flags.tlsKey !== undefined) fromFlags.keyFile = flags.tlsKey;
  if (flags.tlsServerName !== undefined) fromFlags.serverName = flags.tlsServerName;
  const fromEnv = clientTlsFromEnv();
  if (fromEnv === undefined && flags.tls !== true && Object.keys(fromFlags).length === 0) return undefined;
  return { ...fromEnv, ...fromFlags };
}

/** Prints a command's result: `value` as one JSON document with `--json`, else `text()`. */
export function print(flags: GlobalFlags, value: unknown, text: () => string): void {
  console.log(flags.json === true ? JSON.stringify(value, null, 2) : text());
}

/** Prints one event of a stream: `value` as one JSON line with `--json`, else `text()`. */
export function printEvent(flags: GlobalFlags, value: unknown, text: () => string): void {
  console.log(flags.json === true ? JSON.stringify(value) : text());
}

/** How long `trigger --wait` and `savepoint` wait for the coordinator's answer. */
export const WAIT_DEADLINE_MS = 15 * 60_000;

/** Says on stderr why the command failed, and makes it exit with status 1 once it has printed its result. */
export function fail(message: string): void {
  console.error(`ckpt: ${message}`);
  process.exitCode = 1;
}

/** Whether waiting commands report progress on stderr: with `--progress`, or when stderr is a terminal. */
export function progressWanted(flags: GlobalFlags): boolean {
  return flags.progress === true || process.stderr.isTTY === true;
}

/** Parses a checkpoint id: a non-negative integer. */
export function parseCheckpointId(value: string): number {
  const id = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(id)) {
    throw new InvalidArgumentError(`expected a checkpoint id (a non-negative integer), got ${JSON.stringify(value)}`);
  }
  return id;
}

/** Parses a count such as `--limit`: a positive integer. */
export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!/^[1-9]\d*$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Clients of the coordinators that `--address` names; channels open on first use. */
export interface CliClients {
  coordinator: CoordinatorClient;
  query: QueryClient;
}

/** Runs `body` with clients for the flags' address and token, and closes them when it settles. */
export async function withClients<T>(flags: GlobalFlags, body: (clients: CliClients) => Promise<T>): Promise<T> {
  const options = clientOptions(flags);
  const clients = {
    coordinator: createCoordinatorClient(flags.address, options),
    query: createQueryClient(flags.address, options),
  };
  try {
    return await body(clients);
  } finally {
    clients.coordinator.close();
    clients.query.close();
  }
}

/** A savepoint named `<job>/<checkpoint id>`. */
export interface SavepointName {
  jobId: string;
  checkpointId: number;
}

/** Parses `<job>/<checkpoint id>`. */
export function parseSavepointName(value: string): SavepointName {
  const match = /^([A-Za-z0-9_-]{1,128})\/([1-9]\d*)$/.exec(value);
  const checkpointId = Number(match?.[2]);
  if (match === null || !Number.isSafeInteger(checkpointId)) {
    throw new InvalidArgumentError(`expected a savepoint as <job>/<checkpoint id>, got ${JSON.stringify(value)}`);
  }
  return { jobId: match[1] as string, checkpointId };
}
