/**
 * Registers the conformance suite (test/conformance) as ava tests, one
 * serial test per scenario on one etcd and NATS for the file, against the
 * worker command `workerCommand()` gives (undefined: skipped, saying why).
 */
import test from 'ava';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SuiteServers } from '../conformance/run.js';
import { SCENARIOS } from '../conformance/scenarios/index.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Registers one test per scenario for the implementation `impl`. */
export function conformanceTests(impl: string, workerCommand: () => string | { skip: string }): void {
  let servers: SuiteServers | undefined;
  let command: string | { skip: string } = { skip: 'not resolved' };
  test.before(async () => {
    command = workerCommand();
    if (typeof command === 'string') servers = await SuiteServers.start();
  });
  test.after.always(async () => {
    await servers?.stop();
  });
  for (const scenario of SCENARIOS) {
    test.serial(`${impl}: ${scenario.name}`, async (t) => {
      t.timeout((scenario.timeoutMs ?? 90_000) + 30_000);
      if (typeof command !== 'string' || servers === undefined) {
        t.log(`skipped: ${typeof command === 'string' ? 'no servers' : command.skip}`);
        t.pass();
        return;
      }
      const result = await servers.run(
        { repo: REPO, workerCommand: command, impl, logRoot: join(REPO, '.tmp', 'conformance'), log: () => {} },
        scenario,
      );
      t.true(result.passed, `${scenario.name} failed (logs in ${result.logDir}):\n${result.message}`);
    });
  }
}
