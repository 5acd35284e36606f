/**
 * Summarizes V8 CPU profiles (`node --cpu-prof`, or the benchmarks with
 * CKPT_BENCH_CPU_PROF_DIR set) by self time: the functions the sampled
 * time was spent in, with their file and line, summed over every profile
 * given, highest first.
 *
 *   node --import tsx bench/cpu-profile-top.ts [--top N] [--match TEXT] FILE.cpuprofile...
 *
 * `--match` keeps only the profiles whose sampled functions include one
 * from a file whose path contains TEXT (a worker's profile, say, with
 * `--match sdk/task-loop`).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Microseconds of self time per function, keyed by name, file and line. */
function selfTimes(profile: Profile): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i] as number);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '');
    const key = `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`;
    // A sample's time is the delta to the next one.
    out.set(key, (out.get(key) ?? 0) + (deltas[i + 1] ?? 0));
  }
  return out;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, match: { type: 'string' } },
  });
  const top = Number(values.top);
  if (!Number.isInteger(top) || top <= 0) throw new Error(`--top: a positive integer expected, got ${values.top}`);
  if (positionals.length === 0) throw new Error('no .cpuprofile given');
  const total = new Map<string, number>();
  let used = 0;
  for (const file of positionals) {
    const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
    if (!Array.isArray(profile.nodes)) throw new Error(`${file}: not a V8 CPU profile`);
    if (values.match !== undefined && !profile.nodes.some((n) => n.callFrame.url.includes(values.match as string)))
      continue;
    used++;
    for (const [key, us] of selfTimes(profile)) total.set(key, (total.get(key) ?? 0) + us);
  }
  const all = [...total.values()].reduce((a, b) => a + b, 0);
  console.log(`${used} profile(s), ${(all / 1000).toFixed(0)} ms sampled`);
  const rows = [...total.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, us] of rows) {
    console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / all).toFixed(1).padStart(5)}%  ${key}`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
