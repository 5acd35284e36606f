/**
 * CLI commands for savepoints: take one (optionally stopping the job),
 * list a job's, delete one. `ckpt submit --from-savepoint` starts a job
 * from one (client-commands.ts).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { createCoordinatorClient, type ClientOptions } from '../client/index.js';
import type { SavepointSummary__Output } from '../gen/ckpt/v1/SavepointSummary.js';
import { checkpointsTable } from './format.js';

interface GlobalFlags {
  address: string;
  token?: string;
  json?: boolean;
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

function savepointLine(s: SavepointSummary__Output): string {
  const created = new Date(Number(s.createdAtMs)).toISOString();
  return `${s.ref?.jobId ?? ''}/${s.ref?.checkpointId ?? 0}  ${created}  ${s.tasks} tasks  ${s.stateSizeBytes} B`;
}

/** Adds the savepoint commands. */
export function addSavepointCommands(program: Command): void {
  const run = async (
    cmd: Command,
    body: (client: ReturnType<typeof createCoordinatorClient>, f: GlobalFlags) => Promise<void>,
  ) => {
    const f = cmd.optsWithGlobals<GlobalFlags>();
    const options: ClientOptions = f.token === undefined ? {} : { token: f.token };
    const client = createCoordinatorClient(f.address, options);
    try {
      await body(client, f);
    } finally {
      client.close();
    }
  };
  const print = (f: GlobalFlags, value: unknown, text: () => string): void => {
    console.log(f.json === true ? JSON.stringify(value, null, 2) : text());
  };

  program
    .command('savepoint <job>')
    .description('take a savepoint (every task stores its whole state, kept until deleted) and wait for it')
    .option('--stop', 'cancel the job once the savepoint is stored; no checkpoint is taken after it')
    .action(async (job: string, o: { stop?: boolean }, cmd: Command) =>
      run(cmd, async (client, f) => {
        const res = await client.triggerSavepoint({ jobId: job, stop: o.stop === true }, { deadlineMs: 15 * 60_000 });
        print(f, res, () =>
          res.savepoint === null
            ? `savepoint failed:\n${checkpointsTable(res.checkpoint === null ? [] : [res.checkpoint])}`
            : `savepoint ${savepointLine(res.savepoint)}${o.stop === true ? '; job canceled' : ''}`,
        );
        if (res.savepoint === null) process.exitCode = 1;
      }),
    );

  program
    .command('savepoints <job>')
    .description("list a job's savepoints, oldest first")
    .action(async (job: string, _o, cmd: Command) =>
      run(cmd, async (client, f) => {
        const res = await client.listSavepoints({ jobId: job });
        print(f, res, () =>
          res.savepoints.length === 0 ? 'no savepoints' : res.savepoints.map(savepointLine).join('\n'),
        );
      }),
    );

  program
    .command('delete-savepoint <savepoint>')
    .description('delete a savepoint (<job>/<checkpoint id>); its pieces go once nothing retained names them')
    .action(async (name: string, _o, cmd: Command) =>
      run(cmd, async (client, f) => {
        const ref = parseSavepointName(name);
        const res = await client.deleteSavepoint({ ref });
        print(f, res, () => (res.deleted ? `deleted ${name}` : `no savepoint ${name}`));
      }),
    );
}
