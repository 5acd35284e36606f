/**
 * Structured logging. Components receive a `Logger` and derive a child per
 * component and per id (`logger.child({ component: 'store', jobId })`);
 * nothing outside the CLI writes to the console.
 */
import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

/** The logger every component takes. */
export type Logger = PinoLogger;

/** Log levels accepted by `--log-level` and `CKPT_LOG_LEVEL`. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A JSON-lines logger on stderr at the given level. */
export function createLogger(level: LevelWithSilent = 'info', name = 'ckpt'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

/** A logger that drops everything, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
