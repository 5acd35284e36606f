/**
 * Reading a coordinator child's stderr: its logger writes one JSON object
 * per line, so anything else there (a stack trace, "Uncaught", a Node
 * warning) was written past the logger; a fatal log line ends the process.
 */

/** What the lines of stderr show. */
export interface StderrFindings {
  /** Lines that show an uncaught exception or a fatal error. */
  crashes: string[];
  /** Messages of error-level log lines (the coordinator logged a failure of its own). */
  errors: string[];
}

const FATAL = 60;
const ERROR = 50;

/** Sorts stderr lines into crash signs and error logs. */
export function readStderr(lines: readonly string[]): StderrFindings {
  const crashes: string[] = [];
  const errors: string[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    let record: { level?: unknown; msg?: unknown; err?: { message?: unknown } } | undefined;
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      record = undefined;
    }
    if (record === undefined || typeof record !== 'object' || record === null) {
      crashes.push(line);
      continue;
    }
    const level = typeof record.level === 'number' ? record.level : 0;
    const msg = typeof record.msg === 'string' ? record.msg : '';
    const err = typeof record.err?.message === 'string' ? `: ${record.err.message}` : '';
    const text = msg + err;
    if (level >= FATAL || /uncaught|unhandled/i.test(text)) crashes.push(text);
    else if (level >= ERROR) errors.push(text);
  }
  return { crashes, errors };
}
