/**
 * A credential held so that it never reaches a log: JSON, `String()` and
 * `util.inspect` show `[redacted]`; only `reveal()` gives the value.
 */
import { inspect } from 'node:util';

/** What a `Secret` shows wherever it is printed. */
export const REDACTED = '[redacted]';

/** A password, token or key that must not be logged. */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The value itself, for the one call that needs it. */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
