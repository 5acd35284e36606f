/**
 * The flags `ckpt coordinator` accepts, read from the command itself, so
 * that a launcher (the fault suite, `make cluster`) uses a flag only where
 * this build has it.
 */
import { Command } from 'commander';
import { addCoordinatorCommand } from './coordinator-command.js';

/** The long flags of `ckpt coordinator`, e.g. `--tls-cert`. */
export function coordinatorFlagNames(): string[] {
  const program = new Command('ckpt');
  addCoordinatorCommand(program);
  const command = program.commands.find((c) => c.name() === 'coordinator');
  return (command?.options ?? []).map((o) => o.long).filter((long): long is string => long !== undefined);
}
