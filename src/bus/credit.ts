/**
 * The credit message of the data plane's flow control: the reader of an
 * edge tells the writer how many records of the edge it has processed in an
 * epoch, and how many more it takes beyond those (its window). The writer
 * keeps `sent - processed <= window` on the edge; a task with an output over
 * its window stops taking input until a credit makes room.
 *
 * Encoding: UTF-8 JSON, `{"epoch":E,"processed":N,"window":W}`, each a
 * non-negative safe integer, the window at least 1; other fields are
 * ignored. Counts are cumulative in the epoch, so a lost credit is made
 * good by the next one. NATS is untrusted input: a message that does not
 * decode is an error value, never an exception.
 */

/** One credit of an edge. */
export interface Credit {
  /** The epoch the count belongs to. */
  epoch: number;
  /** Records of the edge the reader has processed in `epoch`. */
  processed: number;
  /** Records the reader takes beyond `processed`. */
  window: number;
}

/** The largest credit message accepted, in bytes. */
export const MAX_CREDIT_BYTES = 256;

/** Encodes a credit. */
export function encodeCredit(credit: Credit): Uint8Array {
  return Buffer.from(`{"epoch":${credit.epoch},"processed":${credit.processed},"window":${credit.window}}`);
}

/** Decodes a credit, or says why it is not one. */
export function decodeCredit(data: Uint8Array): { credit: Credit } | { error: string } {
  if (data.length === 0 || data.length > MAX_CREDIT_BYTES) return { error: `a credit of ${data.length} bytes` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    return { error: 'a credit that is not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { error: 'a credit not an object' };
  const { epoch, processed, window } = parsed as Record<string, unknown>;
  if (!isCount(epoch) || !isCount(processed) || !isCount(window) || window < 1) {
    return { error: 'a credit without a non-negative integer epoch and processed count and a positive window' };
  }
  return { credit: { epoch, processed, window } };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
