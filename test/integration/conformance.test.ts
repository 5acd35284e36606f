/**
 * The conformance suite (test/conformance) as ava tests: one serial test
 * per scenario and implementation, the TypeScript SDK's adapter first and
 * then the Go library's (built by `make go-build`; without Go sources in
 * the tree its tests say so and pass), on one etcd and NATS for the file.
 * One file, so that the two runs never load the machine at once.
 */
import test from 'ava';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SuiteServers } from '../conformance/run.js';
import { SCENARIOS } from '../conformance/scenarios/index.js';
import { goWorker, TS_WORKER } from '../conformance/worker-commands.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Each implementation and how to get its worker command (or why it is skipped). */
const IMPLEMENTATIONS: ReadonlyArray<[impl: string, command: () => string | { skip: string }]> = [
  ['ts', () => TS_WORKER],
  ['go', goWorker],
];

let servers: SuiteServers | undefined;
test.before(async () => {
  servers = await SuiteServers.start();
});
test.after.always(async () => {
  await servers?.stop();
});

for (const [impl, workerCommand] of IMPLEMENTATIONS) {
  let command: string | { skip: string } | undefined;
  for (const scenario of SCENARIOS) {
    test.serial(`${impl}: ${scenario.name}`, async (t) => {
      t.timeout((scenario.timeoutMs ?? 90_000) + 60_000);
      command ??= workerCommand();
      if (typeof command !== 'string') {
        t.log(`skipped: ${command.skip}`);
        t.pass();
        return;
      }
      if (servers === undefined) throw new Error('the suite servers did not start');
      const options = { repo: REPO, workerCommand: command, impl, logRoot: join(REPO, '.tmp', 'conformance') };
      const result = await servers.run({ ...options, log: () => {} }, scenario);
      t.true(result.passed, `${scenario.name} failed (logs in ${result.logDir}):\n${result.message}`);
    });
  }
}
