/**
 * `make chaos`: runs the fault suite once and prints its summary; exits
 * non-zero on any violation.
 *
 *   node --import tsx test/chaos/main.ts --seed 7 --faults 30 --coordinators 1
 *
 * Every flag can also be given as an environment variable (a flag wins):
 * SEED, FAULTS, COORDINATORS, JOBS, JOB_GROUPS, FAULT_KINDS (comma-separated), NATS_CLUSTER
 * (default 1: a 3-node NATS cluster with JetStream; 0 for one server),
 * SECURE (default 1: TLS, client certificates and least-privilege users on
 * every link, as `make cluster` runs; 0, or `--insecure`, for plain text),
 * SPACING_MS, COORDINATOR_ARGS (space-separated), CHAOS_LOG_DIR.
 * `--sentences-per-second` and `--settle-timeout-ms` tune the load and the
 * wait for the output; `--report-json FILE` also writes the whole report
 * there, for a caller that checks it.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { killLocalServersSync } from '../../src/dev/index.js';
import { killChildrenSync } from './child.js';
import { parseKinds, type ChaosOptions } from './options.js';
import { runChaos } from './run.js';
import { formatSummary } from './summary.js';

const USAGE =
  'usage: main.ts [--seed N] [--faults N] [--coordinators N] [--jobs N] [--job-groups N] [--kinds k1,k2] [--nats-cluster] ' +
  '[--insecure] [--spacing-ms MS] [--sentences-per-second N] [--settle-timeout-ms MS] [--coordinator-arg FLAG]... ' +
  '[--log-dir DIR] [--report-json FILE]';

function options(): ChaosOptions & { reportJson?: string } {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: process.env.SEED },
      faults: { type: 'string', default: process.env.FAULTS },
      coordinators: { type: 'string', default: process.env.COORDINATORS },
      jobs: { type: 'string', default: process.env.JOBS },
      'job-groups': { type: 'string', default: process.env.JOB_GROUPS },
      kinds: { type: 'string', default: process.env.FAULT_KINDS },
      'nats-cluster': { type: 'boolean', default: !/^(0|false|no)$/i.test(process.env.NATS_CLUSTER ?? '1') },
      insecure: { type: 'boolean', default: /^(0|false|no)$/i.test(process.env.SECURE ?? '1') },
      'spacing-ms': { type: 'string', default: process.env.SPACING_MS },
      'sentences-per-second': { type: 'string' },
      'settle-timeout-ms': { type: 'string' },
      'report-json': { type: 'string' },
      'coordinator-arg': { type: 'string', multiple: true, default: splitWords(process.env.COORDINATOR_ARGS) },
      'log-dir': { type: 'string', default: process.env.CHAOS_LOG_DIR },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const started = Date.now();
  return {
    ...number('seed', values.seed),
    ...number('faults', values.faults),
    ...number('coordinators', values.coordinators),
    ...number('jobs', values.jobs),
    ...number('jobGroups', values['job-groups']),
    ...number('spacingMs', values['spacing-ms']),
    ...number('sentencesPerSecond', values['sentences-per-second']),
    ...number('settleTimeoutMs', values['settle-timeout-ms']),
    ...(values['report-json'] === undefined ? {} : { reportJson: values['report-json'] }),
    ...(values.kinds === undefined || values.kinds === '' ? {} : { kinds: parseKinds(values.kinds) }),
    natsCluster: values['nats-cluster'],
    secure: !values.insecure,
    coordinatorArgs: values['coordinator-arg'],
    ...(values['log-dir'] === undefined || values['log-dir'] === '' ? {} : { logDir: values['log-dir'] }),
    log: (line) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`),
  };
}

/** `{ [option]: n }` for a numeric flag that was given, `{}` for one that was not. */
function number(option: keyof ChaosOptions, text: string | undefined): Partial<ChaosOptions> {
  if (text === undefined || text === '') return {};
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`option ${option}: not a number: ${JSON.stringify(text)}\n${USAGE}`);
  return { [option]: n };
}

function splitWords(text: string | undefined): string[] {
  return (text ?? '').split(/\s+/).filter((w) => w !== '');
}

async function main(): Promise<number> {
  const abort = new AbortController();
  const onSignal = (): void => {
    if (abort.signal.aborted) {
      killChildrenSync();
      killLocalServersSync();
      process.exit(130);
    }
    console.log('interrupted: stopping after the current fault (again to force)');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { reportJson, ...chosen } = options();
  const report = await runChaos({ ...chosen, signal: abort.signal });
  if (reportJson !== undefined) writeFileSync(reportJson, JSON.stringify(report));
  for (const [label, tail] of Object.entries(report.tails)) console.log(`--- ${label}, last lines ---\n${tail}`);
  console.log('--- chaos summary ---');
  for (const line of formatSummary(report)) console.log(line);
  return report.violations.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
