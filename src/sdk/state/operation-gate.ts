/**
 * Tracks the calls a backend has in progress, so that `close()` can refuse
 * new ones and wait for those already running.
 */
import { closedBackendError } from './snapshot-errors.js';

/** Admits calls until closed; `close()` resolves once the admitted ones have settled. */
export class OperationGate {
  readonly #backend: string;
  readonly #running = new Set<Promise<unknown>>();
  #closed = false;

  /** `backend` names the backend in the error of a call after `close()`. */
  constructor(backend: string) {
    this.#backend = backend;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs `operation` unless closed; rejects with SHUTTING_DOWN after `close()`. */
  async run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedBackendError(this.#backend);
    const running = operation();
    this.#running.add(running);
    try {
      return await running;
    } finally {
      this.#running.delete(running);
    }
  }

  /** Refuses new calls and waits until every admitted call has settled. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#running]);
  }
}
