/**
 * The conformance suite's command line (`make conformance`):
 *
 *   node --import tsx test/conformance/main.ts --worker "<command>" [--impl NAME]
 *     [--only first-start,aligned] [--log-dir .tmp/conformance]
 *
 * Prints a table of scenario -> PASS/FAIL and exits 1 when any failed (2 for
 * bad arguments). Each scenario's logs go to `<log-dir>/<impl>/<scenario>/`.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatResults, runSuite } from './run.js';
import { SCENARIOS } from './scenarios/index.js';
import { TS_WORKER } from './worker-commands.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string', default: TS_WORKER },
      impl: { type: 'string', default: 'ts' },
      only: { type: 'string' },
      'log-dir': { type: 'string', default: join(REPO, '.tmp', 'conformance') },
      list: { type: 'boolean', default: false },
    },
  });
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name}: ${s.summary}\n`);
    return 0;
  }
  const names = values.only
    ?.split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const unknown = names?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown scenarios: ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(values.impl)) {
    process.stderr.write(`--impl must be letters, digits, '.', '_' or '-', got ${JSON.stringify(values.impl)}\n`);
    return 2;
  }
  const scenarios = names === undefined ? SCENARIOS : SCENARIOS.filter((s) => names.includes(s.name));
  const results = await runSuite({
    repo: REPO,
    workerCommand: values.worker,
    impl: values.impl,
    scenarios,
    logRoot: resolve(values['log-dir']),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${formatResults(values.impl, results)}\n`);
  return results.every((r) => r.passed) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`conformance: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
