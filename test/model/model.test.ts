/**
 * The spin model of the checkpoint, recovery and fencing protocol
 * (test/model/ckpt.pml, proto/PROTOCOL.md §15), checked with spin, gcc and
 * pan in temporary directories: the good model holds over more states than
 * a floor (its safety with one record per run, as `run-model.ts --quick`;
 * `make model` checks two), the reachability probes find a commit and a
 * restore of a committed checkpoint, and every bad variant gives a
 * counterexample that names the property it breaks.
 */
import test from 'ava';
import { modelRuns, runModel, type RunResult } from './run-model.js';

/** A search of the good model takes a minute or two on a loaded machine. */
const SEARCH_TIMEOUT_MS = 10 * 60 * 1000;

function describe(result: RunResult): string {
  const figures = `${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s`;
  return `${result.run.name}: ${figures}${result.problem === undefined ? '' : `\n${result.problem}`}`;
}

for (const modelRun of modelRuns({ quick: true })) {
  const title =
    modelRun.expect === 'holds'
      ? `the model holds: ${modelRun.name}`
      : `${modelRun.name} gives a counterexample naming ${modelRun.names ?? ''}`;
  // One search at a time: each takes a core and up to a few GB.
  test.serial(title, async (t) => {
    t.timeout(SEARCH_TIMEOUT_MS + 60_000);
    const result = await runModel(modelRun, { timeoutMs: SEARCH_TIMEOUT_MS });
    t.log(describe(result));
    if (modelRun.expect === 'holds') {
      t.is(result.errors, 0, result.violation);
      t.true(result.states >= (modelRun.minStates ?? 1), `only ${result.states} states: the check may be vacuous`);
    } else {
      t.true(result.errors > 0, 'no counterexample');
    }
    t.true(result.ok, result.problem);
  });
}
