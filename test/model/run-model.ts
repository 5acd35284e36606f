/**
 * Runs the spin model of the checkpoint, recovery and fencing protocol
 * (test/model/ckpt.pml, proto/PROTOCOL.md §15): for each run, spin
 * generates the verifier, gcc compiles it and pan searches, all in a
 * temporary directory outside the repository. The good model must hold
 * (no assertion violated, no invalid end state, no acceptance cycle) over a
 * state space above a floor, so that the check cannot be vacuous; each bad
 * variant and each reachability probe must be violated, and the replay of
 * its trail must name the property that failed.
 *
 * `make model` runs every run (`node --import tsx test/model/run-model.ts`);
 * `--quick` checks the good model's safety with one record instead of two
 * (what test/model/model.test.ts runs), `--only a,b` some runs, `--fair`
 * the liveness runs under weak fairness (pan -f; slower, same verdict:
 * every run of the model is finite).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The model, beside this file. */
export const MODEL_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ckpt.pml');

/** Whether a run's property must hold or be violated. */
export type Expectation = 'holds' | 'violated';

/** One verification run of the model. */
export interface ModelRun {
  name: string;
  /** What it checks, for the report. */
  what: string;
  /** `-D` flags of spin (and of the replay of a trail). */
  defines: readonly string[];
  /** The `ltl` claim to check; none: assertions and end states only. */
  ltl?: string;
  /** Searches for acceptance cycles (pan -a): liveness. */
  acceptance?: boolean;
  expect: Expectation;
  /** A violation's pan output or trail replay must contain this (the property that failed). */
  names?: string;
  /** A run that holds must store at least this many states. */
  minStates?: number;
}

/** What a run found. */
export interface RunResult {
  run: ModelRun;
  /** The run found what it expects. */
  ok: boolean;
  /** Why not, when not ok. */
  problem?: string;
  errors: number;
  states: number;
  transitions: number;
  depth: number;
  seconds: number;
  /** The lines of pan's output and the trail's replay that name the violation. */
  violation: string;
}

/** Safety of the good model and its variants: one fault, ids 1-3, two records (one with --quick). */
export function safetyDefines(quick: boolean): string[] {
  return ['-DMAXFAULTS=1', '-DMAXID=4', `-DMAXREC=${quick ? 1 : 2}`];
}

/** Liveness: one fault while ids are left for a checkpoint after it, ids 1-3, one record. */
export const LIVENESS_DEFINES: readonly string[] = ['-DMAXFAULTS=1', '-DMAXID=4', '-DMAXREC=1', '-DLIVENESS'];

/** The bad variants: each switch, the property its counterexample must break. */
export const VARIANTS: ReadonlyArray<{ name: string; what: string; names: string }> = [
  {
    name: 'NO_LEADER_GUARD',
    what: 'the commit transaction does not compare the leader key: a deposed leader commits',
    names: 'assert((e_leader==ct[c]))',
  },
  {
    name: 'NO_EPOCH_GUARD',
    what: 'tasks take records and barriers of any epoch: a manifest is not a consistent cut',
    names: '(blobS[id]==blobO[id])',
  },
  {
    name: 'SINK_EARLY',
    what: 'the sink publishes at its snapshot: output of an uncommitted checkpoint',
    names: 'assert((e_latest>=',
  },
  {
    name: 'NO_ID_FLOOR',
    what: 'a new leader takes ids from latest+1: an id of its predecessor is used again',
    names: 'assert((cnext[c]>g_hiUsed))',
  },
  {
    name: 'NO_ACK_ALL',
    what: "the coordinator commits without the sink's acknowledgement: a torn manifest",
    names: 'assert((cacked[c]==7))',
  },
  {
    name: 'EARLY_START',
    what: 'the StartCommand goes out before every task is ready: records are lost, the cut is not consistent',
    names: '(blobS[id]==blobO[id])',
  },
];

/** Every run: the good model, the reachability probes, the bad variants. */
export function modelRuns(options: { quick?: boolean } = {}): ModelRun[] {
  const quick = options.quick === true;
  const safety = safetyDefines(quick);
  return [
    {
      name: 'safety',
      what: 'ids, no torn manifest, latest monotonic, leadership, consistent cuts, one cut per recovery, exactly-once sink',
      defines: safety,
      expect: 'holds',
      minStates: quick ? 1_000_000 : 5_000_000,
    },
    {
      name: 'liveness',
      what: 'with no more faults a checkpoint commits and a recovery ends',
      defines: LIVENESS_DEFINES,
      ltl: 'live',
      acceptance: true,
      expect: 'holds',
      minStates: 1_000_000,
    },
    {
      name: 'reach-commit',
      what: 'a commit is reachable (probe: [] no commit must fail)',
      defines: safetyDefines(true),
      ltl: 'reach_commit',
      expect: 'violated',
      names: 'g_commits==0',
    },
    {
      name: 'reach-restore',
      what: 'a recovery restoring a committed checkpoint is reachable (probe must fail)',
      defines: safetyDefines(true),
      ltl: 'reach_restore',
      expect: 'violated',
      names: 'g_restoredCommitted',
    },
    ...VARIANTS.map((v) => ({
      name: v.name,
      what: v.what,
      defines: [...safetyDefines(true), `-D${v.name}`],
      expect: 'violated' as const,
      names: v.names,
    })),
    {
      name: 'ROLLBACK_WINDOW',
      what: "the recovery order before JobRollback.abortPending (abort and bump right after the restart backoff's wait), two task failures: a commit starts in the wait and enterEpoch meets it",
      defines: ['-DMAXFAULTS=2', '-DMAXID=4', '-DMAXREC=1', '-DROLLBACK_WINDOW'],
      expect: 'violated',
      names: 'assert(!(ccommit[c]))',
    },
    {
      name: 'NO_COMMIT',
      what: 'the coordinator never commits: liveness must fail',
      defines: [...LIVENESS_DEFINES, '-DNO_COMMIT'],
      ltl: 'live',
      acceptance: true,
      expect: 'violated',
      names: 'START OF CYCLE',
    },
  ];
}

function run(
  command: string,
  args: readonly string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err !== null && typeof err.code !== 'number') {
        reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

function number(output: string, pattern: RegExp): number {
  const match = pattern.exec(output);
  return match?.[1] === undefined ? 0 : Number.parseFloat(match[1]);
}

/** Options of `runModel`. */
export interface RunOptions {
  /** pan -f: weak fairness in acceptance-cycle searches. */
  fair?: boolean;
  /** Longest a search may take. @default 600000 */
  timeoutMs?: number;
}

/** Generates, compiles and runs the verifier of one run in a temporary directory. */
export async function runModel(modelRun: ModelRun, options: RunOptions = {}): Promise<RunResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ckpt-model-'));
  const timeoutMs = options.timeoutMs ?? 600_000;
  try {
    await copyFile(MODEL_FILE, path.join(dir, 'ckpt.pml'));
    const generated = await run('spin', [...modelRun.defines, '-a', 'ckpt.pml'], dir, 60_000);
    if (generated.code !== 0) throw new Error(`spin -a failed:\n${generated.stdout}${generated.stderr}`);
    // A counterexample comes within a few thousand states: the seconds -O2 takes to compile would dominate.
    const optimise = modelRun.expect === 'holds' ? '-O2' : '-O0';
    const cflags = [optimise, '-w', '-DCOLLAPSE', '-DMEMLIM=4096', '-DNFAIR=3'];
    if (modelRun.ltl === undefined) cflags.push('-DSAFETY', '-DNOCLAIM');
    const compiled = await run('gcc', [...cflags, '-o', 'pan', 'pan.c'], dir, 120_000);
    if (compiled.code !== 0) throw new Error(`gcc failed:\n${compiled.stderr}`);
    const panArgs = ['-m500000', '-w25'];
    if (modelRun.ltl !== undefined) panArgs.push('-N', modelRun.ltl);
    if (modelRun.acceptance === true) panArgs.push('-a');
    if (modelRun.acceptance === true && options.fair === true) panArgs.push('-f');
    const started = Date.now();
    const searched = await run('./pan', panArgs, dir, timeoutMs);
    const seconds = (Date.now() - started) / 1000;
    const output = searched.stdout + searched.stderr;
    const errors = number(output, /errors: (\d+)/);
    let replay = '';
    if (errors > 0) {
      const replayed = await run('spin', [...modelRun.defines, '-t', 'ckpt.pml'], dir, 120_000);
      replay = replayed.stdout + replayed.stderr;
    }
    const violation = [...output.split('\n'), ...replay.split('\n')]
      .filter((line) => /violated|Error:|text of failed assertion|acceptance cycle|START OF CYCLE/.test(line))
      .join('\n');
    const result: RunResult = {
      run: modelRun,
      ok: false,
      errors,
      states: number(output, /([\d.e+]+) states, stored/),
      transitions: number(output, /([\d.e+]+) transitions/),
      depth: number(output, /depth reached (\d+)/),
      seconds,
      violation,
    };
    result.problem = judge(result, output, replay);
    result.ok = result.problem === undefined;
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Why a result is not what its run expects; undefined when it is. */
function judge(result: RunResult, output: string, replay: string): string | undefined {
  const { run: modelRun } = result;
  if (output.includes('reached -DMEMLIM bound')) return 'pan ran out of memory (-DMEMLIM)';
  if (!/errors: \d+/.test(output)) return `pan did not finish:\n${output.slice(-2000)}`;
  if (modelRun.expect === 'holds') {
    if (result.errors > 0) return `violated:\n${result.violation}`;
    if (output.includes('Search not completed')) return 'the search did not complete';
    const floor = modelRun.minStates ?? 1;
    if (result.states < floor)
      return `only ${result.states} states stored, fewer than ${floor}: the check may be vacuous`;
    return undefined;
  }
  if (result.errors === 0) return 'no counterexample found';
  const names = modelRun.names ?? '';
  if (!(output + replay).includes(names)) return `the counterexample does not name ${names}:\n${result.violation}`;
  return undefined;
}

function formatResult(r: RunResult): string {
  const verdict = r.errors > 0 ? 'violated' : 'holds';
  const status = r.ok ? 'ok' : 'FAILED';
  const figures = `${r.states} states, ${r.transitions} transitions, depth ${r.depth}, ${r.seconds.toFixed(1)} s`;
  return `${status.padEnd(6)} ${r.run.name.padEnd(16)} ${verdict.padEnd(9)} (expected ${r.run.expect}) ${figures}\n       ${r.run.what}`;
}

async function main(argv: readonly string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const fair = argv.includes('--fair');
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? (argv[onlyAt + 1] ?? '').split(',').filter((s) => s !== '') : [];
  const unknown = only.filter((name) => !modelRuns().some((r) => r.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown run(s): ${unknown.join(', ')}\n`);
    return 2;
  }
  const runs = modelRuns({ quick }).filter((r) => only.length === 0 || only.includes(r.name));
  let failed = 0;
  for (const modelRun of runs) {
    const result = await runModel(modelRun, { fair });
    process.stdout.write(`${formatResult(result)}\n`);
    if (result.violation !== '' && result.errors > 0)
      process.stdout.write(`       ${result.violation.split('\n')[0]}\n`);
    if (!result.ok) {
      failed += 1;
      process.stdout.write(`       ${result.problem ?? ''}\n`);
    }
  }
  process.stdout.write(
    failed === 0 ? `all ${runs.length} runs as expected\n` : `${failed} of ${runs.length} runs failed\n`,
  );
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
