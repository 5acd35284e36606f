/**
 * The last part of a child process's output, kept for error messages.
 */

/** How many characters of output a `LogTail` keeps by default. */
export const DEFAULT_LOG_TAIL_CHARS = 64 * 1024;

/** A bounded buffer holding the most recent output of a process. */
export class LogTail {
  #text = '';

  constructor(readonly maxChars: number = DEFAULT_LOG_TAIL_CHARS) {}

  /** Appends a chunk, dropping the oldest text beyond `maxChars`. */
  append(chunk: Buffer | string): void {
    this.#text += chunk.toString();
    if (this.#text.length > this.maxChars) this.#text = this.#text.slice(-this.maxChars);
  }

  /** Everything kept. */
  text(): string {
    return this.#text;
  }

  /** The last `lines` lines. */
  lastLines(lines: number): string {
    return this.#text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}
