/**
 * Survey mode (`CKPT_FUZZ_SURVEY=1`): instead of stopping and shrinking at
 * the first failed case, a run goes on and groups every failed case by
 * what it broke, so that one run lists each distinct problem once, with
 * the first case that showed it and how often it came.
 */

/** The problem kinds of one failed case, without the ids, numbers and texts that vary. */
export function problemKinds(problems: readonly string[]): string[] {
  return problems
    .filter((p) => !p.startsWith('case ') && !p.startsWith('decoded '))
    .flatMap((p) =>
      p.startsWith('accepted although ')
        ? p
            .slice(18)
            .split('; ')
            .map((x) => `accepted although ${x}`)
        : [p],
    )
    .map(normalise);
}

function normalise(problem: string): string {
  const firstLine = problem.split('\n')[0] ?? problem;
  return firstLine
    .replace(/\[\d+\]/g, '[]')
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\b\d+\b/g, 'N')
    .replace(/(: ).{60,}$/, (_m, sep: string) => `${sep}…`)
    .slice(0, 200);
}

/** Failed cases grouped by problem kind. */
export class Survey {
  readonly #kinds = new Map<string, { count: number; example: string }>();
  failedCases = 0;

  /** Records one failed case. */
  add(problems: readonly string[]): void {
    this.failedCases += 1;
    for (const kind of problemKinds(problems)) {
      const known = this.#kinds.get(kind);
      if (known) known.count += 1;
      else this.#kinds.set(kind, { count: 1, example: problems.join('\n') });
    }
  }

  get empty(): boolean {
    return this.failedCases === 0;
  }

  /** Every kind with its count and first example. */
  report(): string {
    const kinds = [...this.#kinds.entries()].sort((a, b) => b[1].count - a[1].count);
    return [
      `${this.failedCases} failed cases, ${kinds.length} kinds of problem:`,
      ...kinds.map(([kind, { count, example }]) => `\n[${count}×] ${kind}\n  first: ${example.replace(/\n/g, '\n  ')}`),
    ].join('\n');
  }
}
