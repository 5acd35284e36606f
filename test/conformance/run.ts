/**
 * Runs scenarios against one worker implementation: one etcd and one NATS
 * server for the whole run, each scenario with its own job, prefixes,
 * coordinators and worker processes, one after the other.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import { startEtcd, startNats, type EtcdProcess, type NatsProcess } from '../../src/dev/index.js';
import { ScenarioRun, type SuiteContext } from './harness.js';
import { DEFAULT_SCENARIO_TIMEOUT_MS, type Scenario } from './scenario.js';

/** What to run. */
export interface SuiteOptions {
  /** The repository root: worker commands run there. */
  repo: string;
  /** The worker command line under test. */
  workerCommand: string;
  /** The implementation's name, for the report and the log directory. */
  impl: string;
  scenarios: readonly Scenario[];
  /** Logs go to `<logRoot>/<impl>/<scenario>/`. */
  logRoot: string;
  /** Progress lines. */
  log(line: string): void;
}

/** The outcome of one scenario. */
export interface ScenarioResult {
  name: string;
  passed: boolean;
  durationMs: number;
  /** Why it failed; empty when it passed. */
  message: string;
  logDir: string;
}

/** The servers and connection one run shares between its scenarios. */
export class SuiteServers {
  private constructor(
    readonly etcd: EtcdProcess,
    readonly nats: NatsProcess,
    readonly nc: NatsConnection,
  ) {}

  /** Starts etcd and NATS and connects the runner to NATS. */
  static async start(): Promise<SuiteServers> {
    const [etcd, nats] = await Promise.all([startEtcd(), startNats()]);
    try {
      return new SuiteServers(etcd, nats, await connectNats([nats.url], 'ckpt-conformance-runner'));
    } catch (err) {
      await Promise.all([etcd.stop(), nats.stop()]);
      throw err;
    }
  }

  /** Runs one scenario with its logs in `<logRoot>/<impl>/<scenario>/`; never throws for a failing scenario. */
  async run(options: Omit<SuiteOptions, 'scenarios'>, scenario: Scenario): Promise<ScenarioResult> {
    const logDir = join(options.logRoot, options.impl, scenario.name);
    await rm(logDir, { recursive: true, force: true });
    await mkdir(logDir, { recursive: true });
    const suite: SuiteContext = {
      repo: options.repo,
      etcdUrl: this.etcd.clientUrl,
      natsUrl: this.nats.url,
      nats: this.nats,
      nc: this.nc,
      workerCommand: options.workerCommand,
      logDir,
      log: (line) => options.log(line),
    };
    options.log(`${scenario.name}: ${scenario.summary}`);
    const result = await runScenario(suite, scenario);
    await writeFile(join(logDir, 'result.txt'), `${result.passed ? 'PASS' : 'FAIL'}\n${result.message}\n`);
    const why = result.passed ? '' : `\n  ${result.message.replaceAll('\n', '\n  ')}`;
    options.log(
      `${scenario.name}: ${result.passed ? 'PASS' : 'FAIL'} in ${(result.durationMs / 1000).toFixed(1)} s${why}`,
    );
    return result;
  }

  /** Closes the connection and stops the servers. */
  async stop(): Promise<void> {
    await this.nc.close().catch(() => undefined);
    await Promise.all([this.etcd.stop(), this.nats.stop()]);
  }
}

/** Runs every scenario; never throws for a failing scenario. */
export async function runSuite(options: SuiteOptions): Promise<ScenarioResult[]> {
  const servers = await SuiteServers.start();
  try {
    const results: ScenarioResult[] = [];
    for (const scenario of options.scenarios) results.push(await servers.run(options, scenario));
    return results;
  } finally {
    await servers.stop();
  }
}

async function runScenario(suite: SuiteContext, scenario: Scenario): Promise<ScenarioResult> {
  const started = Date.now();
  const s = new ScenarioRun(suite, scenario.name);
  const timeoutMs = scenario.timeoutMs ?? DEFAULT_SCENARIO_TIMEOUT_MS;
  let message = '';
  let timer: NodeJS.Timeout | undefined;
  try {
    await s.open();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the scenario did not end within ${timeoutMs} ms (${s.describe()})`)),
        timeoutMs,
      );
    });
    const running = scenario.run(s).then(() => s.verify());
    // After a timeout the scenario's own steps fail as the run closes: that outcome is no longer read.
    running.catch(() => undefined);
    await Promise.race([running, timeout]);
  } catch (err) {
    message = err instanceof Error ? err.message : String(err);
    // The core check also speaks when the scenario failed first: what it finds may be the cause.
    const extra = await s.verify().then(
      () => '',
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    if (extra !== '' && extra !== message) message += `\n${extra}`;
  } finally {
    clearTimeout(timer);
    await writeFile(join(suite.logDir, 'reports.jsonl'), s.reports.map((r) => JSON.stringify(r)).join('\n') + '\n');
    await s.close().catch((err: unknown) => {
      suite.log(`${scenario.name}: closing failed: ${(err as Error).message}`);
    });
  }
  return {
    name: scenario.name,
    passed: message === '',
    durationMs: Date.now() - started,
    message,
    logDir: suite.logDir,
  };
}

/** The results as a table: scenario, PASS or FAIL, seconds. */
export function formatResults(impl: string, results: readonly ScenarioResult[]): string {
  const width = Math.max(8, ...results.map((r) => r.name.length));
  const lines = [`conformance of ${impl}`, `${'scenario'.padEnd(width)}  result  seconds`];
  for (const r of results) {
    lines.push(
      `${r.name.padEnd(width)}  ${(r.passed ? 'PASS' : 'FAIL').padEnd(6)}  ${(r.durationMs / 1000).toFixed(1)}`,
    );
  }
  const failed = results.filter((r) => !r.passed).length;
  lines.push(`${results.length - failed} passed, ${failed} failed`);
  return lines.join('\n');
}
