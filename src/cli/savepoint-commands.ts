/**
 * CLI commands for savepoints: take one (optionally stopping the job),
 * list a job's, delete one. `ckpt submit --from-savepoint` starts a job
 * from one (client-commands.ts).
 */
import type { Command } from 'commander';
import { abortText, bytes, checkpointsTable, savepointName, savepointsTable } from './format.js';
import {
  fail,
  globalFlags,
  parseSavepointName,
  print,
  progressWanted,
  WAIT_DEADLINE_MS,
  withClients,
  type SavepointName,
} from './flags.js';
import { reportingOn } from './progress.js';

/** Adds the savepoint commands. */
export function addSavepointCommands(program: Command): void {
  program
    .command('savepoint <job>')
    .description(
      'take a savepoint (every task stores its whole state, kept until deleted) and wait for it; exit status 1 when it fails',
    )
    .option('--stop', 'cancel the job once the savepoint is stored; no checkpoint is taken after it')
    .action(async (job: string, o: { stop?: boolean }, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator, query }) => {
        const res = await reportingOn(query, job, { savepoint: true, wanted: progressWanted(f) }, () =>
          coordinator.triggerSavepoint({ jobId: job, stop: o.stop === true }, { deadlineMs: WAIT_DEADLINE_MS }),
        );
        const s = res.savepoint;
        print(f, res, () =>
          s === null
            ? checkpointsTable(res.checkpoint === null ? [] : [res.checkpoint])
            : `savepoint ${savepointName(s)}: ${s.tasks} tasks, ${bytes(s.stateSizeBytes)}${o.stop === true ? '; job canceled' : ''}`,
        );
        if (s === null)
          fail(`savepoint failed: ${res.checkpoint === null ? 'no checkpoint' : abortText(res.checkpoint)}`);
      });
    });

  program
    .command('savepoints <job>')
    .description("list a job's savepoints, oldest first")
    .action(async (job: string, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.listSavepoints({ jobId: job });
        print(f, res, () => (res.savepoints.length === 0 ? 'no savepoints' : savepointsTable(res.savepoints)));
      });
    });

  program
    .command('delete-savepoint')
    .description(
      'delete a savepoint; its pieces go once nothing retained names them; exit status 1 when there is no such savepoint',
    )
    .argument('<savepoint>', '<job>/<checkpoint id>', parseSavepointName)
    .action(async (ref: SavepointName, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      const name = `${ref.jobId}/${ref.checkpointId}`;
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.deleteSavepoint({ ref });
        if (res.deleted || f.json === true) print(f, res, () => `deleted ${name}`);
        if (!res.deleted) fail(`no savepoint ${name}`);
      });
    });
}
