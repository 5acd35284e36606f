/**
 * CLI commands that talk to a running coordinator: jobs, checkpoints,
 * submit, cancel, trigger, restore, gc, watch. `--address` (CKPT_ADDRESS, one address
 * or several comma-separated, among which calls follow the leader) and
 * `--token` (CKPT_AUTH_TOKEN) apply to all of them.
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { createCoordinatorClient, createQueryClient, type ClientOptions } from '../client/index.js';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import { checkpointsTable, garbageText, jobDetails, jobsTable } from './format.js';
import { parseSavepointName, type SavepointName } from './savepoint-commands.js';

interface GlobalFlags {
  address: string;
  token?: string;
  json?: boolean;
}

function print(flags: GlobalFlags, value: unknown, text: () => string): void {
  console.log(flags.json === true ? JSON.stringify(value, null, 2) : text());
}

/** Parses a checkpoint id option: a non-negative integer. */
function parseCheckpointId(value: string): number {
  const id = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(id)) {
    throw new InvalidArgumentError(`expected a checkpoint id (a non-negative integer), got ${JSON.stringify(value)}`);
  }
  return id;
}

function connect(flags: GlobalFlags): { options: ClientOptions; address: string } {
  return { address: flags.address, options: flags.token === undefined ? {} : { token: flags.token } };
}

/** Adds the commands that call a coordinator. */
export function addClientCommands(program: Command): void {
  const globals = (cmd: Command): GlobalFlags => cmd.optsWithGlobals<GlobalFlags>();

  program
    .command('jobs')
    .description('list jobs')
    .action(async (_o, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const query = createQueryClient(address, options);
      try {
        const jobs: JobInfo__Output[] = [];
        let pageToken = '';
        do {
          const page = await query.listJobs({ pageToken });
          jobs.push(...page.jobs);
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        print(f, jobs, () => jobsTable(jobs));
      } finally {
        query.close();
      }
    });

  program
    .command('job <job>')
    .description('show one job: state, epoch, latest checkpoint, attached tasks, checkpoint interval and why')
    .action(async (job: string, _o, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const client = createCoordinatorClient(address, options);
      try {
        const res = await client.getJob({ jobId: job });
        print(f, res.job, () => (res.job === null ? jobsTable([]) : jobDetails(res.job)));
      } finally {
        client.close();
      }
    });

  program
    .command('checkpoints <job>')
    .description("list a job's checkpoints, newest first")
    .option('--limit <n>', 'at most this many', '20')
    .action(async (job: string, o: { limit: string }, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const query = createQueryClient(address, options);
      try {
        const page = await query.listCheckpoints({ jobId: job, pageSize: Number(o.limit) });
        print(f, page.checkpoints, () => checkpointsTable(page.checkpoints));
      } finally {
        query.close();
      }
    });

  program
    .command('checkpoint <job> <id>')
    .description('show one checkpoint and its manifest')
    .action(async (job: string, id: string, _o, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const query = createQueryClient(address, options);
      try {
        const res = await query.getCheckpoint({ jobId: job, checkpointId: Number(id) });
        print(f, res, () => {
          const head = checkpointsTable(res.checkpoint === null ? [] : [res.checkpoint]);
          const tasks = (res.manifest?.tasks ?? []).map(
            (t) =>
              `  ${t.taskId}  ${t.state?.uri ?? ''}  ${t.state?.sizeBytes ?? 0} B  ${t.positions.map((p) => `${p.input}@${p.offset}`).join(' ')}`,
          );
          return [head, ...(tasks.length > 0 ? ['manifest:', ...tasks] : [])].join('\n');
        });
      } finally {
        query.close();
      }
    });

  program
    .command('submit <file>')
    .description('submit a job spec (JSON, field names of ckpt.v1.JobSpec in lowerCamelCase: jobId, policy.intervalMs)')
    .option('--from-savepoint <savepoint>', 'start from a savepoint, <job>/<checkpoint id>', parseSavepointName)
    .option('--allow-non-restored-state', "drop the savepoint's state of tasks the new spec does not restore")
    .action(
      async (file: string, o: { fromSavepoint?: SavepointName; allowNonRestoredState?: boolean }, cmd: Command) => {
        const f = globals(cmd);
        const { address, options } = connect(f);
        const client = createCoordinatorClient(address, options);
        try {
          const spec = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
          const res = await client.submitJob({
            spec,
            fromSavepoint: o.fromSavepoint,
            allowNonRestoredState: o.allowNonRestoredState === true,
          });
          print(f, res, () => `${res.created ? 'submitted' : 'already registered'}: ${res.job?.spec?.jobId ?? ''}`);
        } finally {
          client.close();
        }
      },
    );

  program
    .command('cancel <job>')
    .description('cancel a job')
    .action(async (job: string, _o, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const client = createCoordinatorClient(address, options);
      try {
        const res = await client.cancelJob({ jobId: job });
        print(f, res, () => jobsTable(res.job === null ? [] : [res.job]));
      } finally {
        client.close();
      }
    });

  program
    .command('trigger <job>')
    .description('start a checkpoint now')
    .option('--wait', 'wait until it completes or aborts')
    .option('--full', 'force a full snapshot')
    .action(async (job: string, o: { wait?: boolean; full?: boolean }, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const client = createCoordinatorClient(address, options);
      try {
        const res = await client.triggerCheckpoint(
          {
            jobId: job,
            wait: o.wait === true,
            snapshotType: o.full === true ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_UNSPECIFIED',
          },
          { deadlineMs: 15 * 60_000 },
        );
        print(f, res, () => checkpointsTable(res.checkpoint === null ? [] : [res.checkpoint]));
      } finally {
        client.close();
      }
    });

  program
    .command('restore <job>')
    .description('restore every task of a job from a retained checkpoint, in a new epoch')
    .option('--checkpoint <id>', 'the retained checkpoint to restore; 0 for the latest', parseCheckpointId, 0)
    .action(async (job: string, o: { checkpoint: number }, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const client = createCoordinatorClient(address, options);
      try {
        const res = await client.restoreJob({ jobId: job, checkpointId: o.checkpoint });
        print(f, res, () => `restored: ${job} from checkpoint ${res.checkpointId} in epoch ${res.epoch}`);
      } finally {
        client.close();
      }
    });

  program
    .command('gc <job>')
    .description("delete a job's state pieces that no retained checkpoint or savepoint names")
    .option('--dry-run', 'only list what would be deleted')
    .action(async (job: string, o: { dryRun?: boolean }, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const client = createCoordinatorClient(address, options);
      try {
        const res = await client.collectGarbage({ jobId: job, dryRun: o.dryRun === true });
        print(f, res, () => garbageText(job, res));
      } finally {
        client.close();
      }
    });

  program
    .command('watch [job]')
    .description('stream checkpoint events until interrupted')
    .action(async (job: string | undefined, _o, cmd: Command) => {
      const f = globals(cmd);
      const { address, options } = connect(f);
      const query = createQueryClient(address, options);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      try {
        for await (const c of query.watchCheckpoints({ jobId: job ?? '' }, { signal: abort.signal })) {
          print(
            f,
            c,
            () =>
              `${c.jobId} ${c.checkpointId} ${c.state.replace('CHECKPOINT_STATE_', '')}${c.abortReason === 'ABORT_REASON_UNSPECIFIED' ? '' : ' ' + c.abortReason.replace('ABORT_REASON_', '') + ' ' + c.abortMessage}`,
          );
        }
      } finally {
        query.close();
      }
    });
}
