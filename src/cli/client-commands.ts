/**
 * CLI commands that talk to a running coordinator: jobs, job, checkpoints,
 * checkpoint, submit, cancel, trigger, restore, gc, watch. `--address`
 * (CKPT_ADDRESS, one address or several comma-separated, among which calls
 * follow the leader), `--token` (CKPT_AUTH_TOKEN), `--json` and `--progress`
 * apply to all of them.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { JobInfo__Output } from '../gen/ckpt/v1/JobInfo.js';
import {
  abortText,
  checkpointDetails,
  checkpointsTable,
  garbageText,
  jobDetails,
  jobsTable,
  watchLine,
} from './format.js';
import {
  fail,
  globalFlags,
  parseCheckpointId,
  parsePositiveInt,
  parseSavepointName,
  print,
  printEvent,
  progressWanted,
  WAIT_DEADLINE_MS,
  withClients,
  type SavepointName,
} from './flags.js';
import { reportingOn } from './progress.js';

/** Adds the commands that call a coordinator. */
export function addClientCommands(program: Command): void {
  addQueryCommands(program);
  addControlCommands(program);
}

function addQueryCommands(program: Command): void {
  program
    .command('jobs')
    .description('list jobs')
    .action(async (_o, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ query }) => {
        const jobs: JobInfo__Output[] = [];
        let pageToken = '';
        do {
          const page = await query.listJobs({ pageToken });
          jobs.push(...page.jobs);
          pageToken = page.nextPageToken;
        } while (pageToken !== '');
        print(f, jobs, () => jobsTable(jobs));
      });
    });

  program
    .command('job <job>')
    .description('show one job: state, epoch, latest checkpoint, attached tasks, checkpoint interval and why')
    .action(async (job: string, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.getJob({ jobId: job });
        print(f, res.job, () => (res.job === null ? jobsTable([]) : jobDetails(res.job)));
      });
    });

  program
    .command('checkpoints <job>')
    .description(
      "list a job's checkpoints, newest first: status, type, tasks acknowledged, trigger time, latest acknowledgement, duration, sizes, abort reason",
    )
    .option('--limit <n>', 'at most this many', parsePositiveInt, 20)
    .action(async (job: string, o: { limit: number }, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ query }) => {
        const page = await query.listCheckpoints({ jobId: job, pageSize: o.limit });
        print(f, page.checkpoints, () => checkpointsTable(page.checkpoints));
      });
    });

  program
    .command('checkpoint')
    .description('show one checkpoint and, if it is completed and retained, its manifest')
    .argument('<job>', 'job id')
    .argument('<id>', 'checkpoint id', parseCheckpointId)
    .action(async (job: string, id: number, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ query }) => {
        const res = await query.getCheckpoint({ jobId: job, checkpointId: id });
        print(f, res, () => checkpointDetails(res));
      });
    });

  program
    .command('watch [job]')
    .description('stream checkpoint events (of every job, or of one) until interrupted; --json: one JSON line each')
    .action(async (job: string | undefined, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      await withClients(f, async ({ query }) => {
        for await (const c of query.watchCheckpoints({ jobId: job ?? '' }, { signal: abort.signal })) {
          printEvent(f, c, () => watchLine(c));
        }
      });
    });
}

function addControlCommands(program: Command): void {
  program
    .command('submit <file>')
    .description('submit a job spec (JSON, field names of ckpt.v1.JobSpec in lowerCamelCase: jobId, policy.intervalMs)')
    .option('--from-savepoint <savepoint>', 'start from a savepoint, <job>/<checkpoint id>', parseSavepointName)
    .option('--allow-non-restored-state', "drop the savepoint's state of tasks the new spec does not restore")
    .action(
      async (file: string, o: { fromSavepoint?: SavepointName; allowNonRestoredState?: boolean }, cmd: Command) => {
        const f = globalFlags(cmd);
        const spec = await readSpec(file);
        await withClients(f, async ({ coordinator }) => {
          const res = await coordinator.submitJob({
            spec,
            fromSavepoint: o.fromSavepoint,
            allowNonRestoredState: o.allowNonRestoredState === true,
          });
          print(f, res, () => `${res.created ? 'submitted' : 'already registered'}: ${res.job?.spec?.jobId ?? ''}`);
        });
      },
    );

  program
    .command('cancel <job>')
    .description('cancel a job: pending checkpoints abort, workers are told')
    .action(async (job: string, _o, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.cancelJob({ jobId: job });
        print(f, res, () => jobsTable(res.job === null ? [] : [res.job]));
      });
    });

  program
    .command('trigger <job>')
    .description('start a checkpoint now')
    .option('--wait', 'wait until it completes or aborts (exit status 1 when it aborts)')
    .option('--full', 'force a full snapshot')
    .action(async (job: string, o: { wait?: boolean; full?: boolean }, cmd: Command) => {
      const f = globalFlags(cmd);
      const wait = o.wait === true;
      await withClients(f, async ({ coordinator, query }) => {
        const snapshotType = o.full === true ? 'SNAPSHOT_TYPE_FULL' : 'SNAPSHOT_TYPE_UNSPECIFIED';
        const res = await reportingOn(query, job, { savepoint: false, wanted: wait && progressWanted(f) }, () =>
          coordinator.triggerCheckpoint({ jobId: job, wait, snapshotType }, { deadlineMs: WAIT_DEADLINE_MS }),
        );
        print(f, res, () => checkpointsTable(res.checkpoint === null ? [] : [res.checkpoint]));
        if (res.checkpoint?.state === 'CHECKPOINT_STATE_ABORTED') fail(abortText(res.checkpoint));
      });
    });

  program
    .command('restore <job>')
    .description('restore every task of a job from a retained checkpoint, in a new epoch')
    .option('--checkpoint <id>', 'the retained checkpoint to restore; 0 for the latest', parseCheckpointId, 0)
    .action(async (job: string, o: { checkpoint: number }, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.restoreJob({ jobId: job, checkpointId: o.checkpoint });
        print(f, res, () => `restored: ${job} from checkpoint ${res.checkpointId} in epoch ${res.epoch}`);
      });
    });

  program
    .command('gc <job>')
    .description("delete a job's state pieces that no retained checkpoint or savepoint names")
    .option('--dry-run', 'only list what would be deleted')
    .action(async (job: string, o: { dryRun?: boolean }, cmd: Command) => {
      const f = globalFlags(cmd);
      await withClients(f, async ({ coordinator }) => {
        const res = await coordinator.collectGarbage({ jobId: job, dryRun: o.dryRun === true });
        print(f, res, () => garbageText(job, res));
      });
    });
}

/** Reads a job spec file: a JSON object. */
async function readSpec(file: string): Promise<Record<string, unknown>> {
  const text = await readFile(file, 'utf8');
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new Error(`${file} does not hold a job spec: expected a JSON object`);
  }
  return spec as Record<string, unknown>;
}
