/**
 * Counts of one target's run: messages by form and mode, how many were
 * taken, refusals by reason, and the error lines the coordinator logged.
 */
import type { FuzzCase } from './cases.js';
import type { Verdict } from './judge.js';

/** The counts of one target. */
export class Tally {
  readonly target: string;
  messages = 0;
  accepted = 0;
  /** Cases of a standby whose outcome cannot be told (see attach-exec.ts). */
  unclear = 0;
  readonly forms = new Map<string, number>();
  readonly modes = new Map<string, number>();
  readonly refusals = new Map<string, number>();
  readonly errorLogs = new Map<string, number>();
  /** Milliseconds spent in all, sending cases, and checking after them. */
  ms = 0;
  sendMs = 0;
  checkMs = 0;

  constructor(target: string) {
    this.target = target;
  }

  /** Counts one judged case. */
  add(c: FuzzCase, verdict: Verdict): void {
    this.messages += 1;
    bump(this.forms, c.form);
    if (c.mode !== undefined) bump(this.modes, c.mode);
    if (verdict.accepted === true) this.accepted += 1;
    else if (verdict.accepted === undefined) this.unclear += 1;
    if (verdict.refusal !== undefined && verdict.accepted !== true) bump(this.refusals, verdict.refusal);
  }

  /** Counts error-level log lines of the coordinator. */
  addErrorLogs(messages: readonly string[]): void {
    for (const m of messages) bump(this.errorLogs, m.slice(0, 100));
  }

  /** One paragraph for the test log. */
  summary(): string {
    const list = (m: Map<string, number>): string =>
      [...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none';
    return [
      `${this.target}: ${this.messages} messages in ${(this.ms / 1000).toFixed(1)} s ` +
        `(per message ${this.#per(this.sendMs)} ms sending, ${this.#per(this.checkMs)} ms checking), ${this.accepted} taken` +
        (this.unclear > 0 ? `, ${this.unclear} standby cases ended` : ''),
      `  forms: ${list(this.forms)}` + (this.modes.size > 0 ? `; modes: ${list(this.modes)}` : ''),
      `  refusals: ${list(this.refusals)}`,
      ...(this.errorLogs.size > 0 ? [`  coordinator error logs: ${list(this.errorLogs)}`] : []),
    ].join('\n');
  }

  #per(ms: number): string {
    return this.messages === 0 ? '-' : (ms / this.messages).toFixed(1);
  }

  /** The counts as plain data, for a JSON report. */
  toJSON(): Record<string, unknown> {
    return {
      target: this.target,
      messages: this.messages,
      accepted: this.accepted,
      unclear: this.unclear,
      ms: this.ms,
      sendMs: this.sendMs,
      checkMs: this.checkMs,
      forms: Object.fromEntries(this.forms),
      modes: Object.fromEntries(this.modes),
      refusals: Object.fromEntries(this.refusals),
      errorLogs: Object.fromEntries(this.errorLogs),
    };
  }
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}
