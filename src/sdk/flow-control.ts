/**
 * The reader's side of the data plane's flow control: a task with inputs
 * counts, per input edge, the records it has taken for processing in the
 * current epoch, and sends the edge's writer that cumulative count with its
 * window (a credit, see `src/bus/credit.ts` and proto/PROTOCOL.md). The
 * writer then keeps at most `window` records of the edge unprocessed here.
 *
 * A credit is sent once a quarter of the window was processed since the
 * last one, by `tick` for any progress not yet told, and by `tick` again
 * at least every `CREDIT_REPEAT_MS` even without progress: counts are
 * cumulative, so a lost credit is made good by the next, and the repeat is
 * also what tells a writer of a later start that this reader takes credits.
 */
import type { Credit } from '../bus/index.js';

/** A credit is repeated at least this often, progress or not. */
export const CREDIT_REPEAT_MS = 1000;
/** How often the worker ticks its readers' credits. */
export const CREDIT_TICK_MS = 50;

/** Where credits go: `DataPlane.publishCredit`. */
export type CreditPublisher = (from: string, to: string, credit: Credit) => void;

interface InputCredit {
  readonly from: string;
  /** Records of the edge taken in the epoch; starts below 0 by the restored in-flight records of the input. */
  processed: number;
  /** `processed` as last sent (−1 before the first credit of the epoch). */
  told: number;
  toldAtMs: number;
}

/** The credits one reading task sends for its inputs. */
export class ReaderCredits {
  readonly #reader: string;
  readonly #window: number;
  readonly #step: number;
  readonly #publish: CreditPublisher;
  readonly #inputs = new Map<string, InputCredit>();
  #epoch = -1;
  #active = false;

  /** `reader`: the task; `inputs`: its distinct inputs; `window`: records it takes beyond those processed (≥ 1). */
  constructor(reader: string, inputs: readonly string[], window: number, publish: CreditPublisher) {
    this.#reader = reader;
    this.#window = window;
    this.#step = Math.max(1, Math.floor(window / 4));
    this.#publish = publish;
    for (const from of new Set(inputs)) this.#inputs.set(from, { from, processed: 0, told: -1, toldAtMs: 0 });
  }

  /**
   * The task runs in `epoch` from now on: counts start over, at minus the
   * records of each input that the restore put back in its queue (they did
   * not travel on the edge in this epoch), and a first credit goes out.
   */
  begin(epoch: number, restoredPerInput: ReadonlyMap<string, number>): void {
    this.#epoch = epoch;
    this.#active = true;
    for (const input of this.#inputs.values()) {
      input.processed = -(restoredPerInput.get(input.from) ?? 0);
      input.told = -1;
      this.#send(input, performance.now());
    }
  }

  /** The task stopped (a recovery): no credits until the next `begin`. */
  stop(): void {
    this.#active = false;
  }

  /** The task took one record of `input` for processing. */
  processed(input: string): void {
    const entry = this.#inputs.get(input);
    if (entry === undefined) return;
    entry.processed += 1;
    if (this.#active && entry.processed - entry.told >= this.#step) this.#send(entry, performance.now());
  }

  /** Sends what progress is untold, and repeats credits not sent for `CREDIT_REPEAT_MS`. */
  tick(now: number): void {
    if (!this.#active) return;
    for (const entry of this.#inputs.values()) {
      if (entry.processed > entry.told || now - entry.toldAtMs >= CREDIT_REPEAT_MS) this.#send(entry, now);
    }
  }

  #send(entry: InputCredit, now: number): void {
    const processed = Math.max(0, entry.processed);
    entry.told = entry.processed;
    entry.toldAtMs = now;
    this.#publish(entry.from, this.#reader, { epoch: this.#epoch, processed, window: this.#window });
  }
}
