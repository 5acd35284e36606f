/**
 * The staged records of an exactly-once sink: records of the checkpoint
 * interval in progress, and per checkpoint k the records sealed by its
 * snapshot ("pending(k)"), waiting for a checkpoint ≥ k to complete.
 * Encoded as the sink's snapshot.
 *
 * Encoding: "CKS2", a u16 length and the id (UTF-8) of the job that took
 * the snapshot, a u32 group count, then per group the checkpoint id as
 * u64, a u32 record count and per record a u32 length and its bytes (all
 * big-endian). "CKS1", written before, has no job id. The job id names
 * the records' message ids when a job started from a savepoint publishes
 * them again, so that the stream drops what the savepoint's job published. A group's encoding is kept once made: a pending group is in
 * every snapshot until it is published, and a sink that stages many
 * records would otherwise encode them again at every checkpoint.
 */
import { CkptError } from '../core/errors.js';

const MAGIC_V1 = [0x43, 0x4b, 0x53, 0x31];
const MAGIC = [0x43, 0x4b, 0x53, 0x32];

/** Staged and pending records of one sink task. */
export class SinkStaging {
  #current: Uint8Array[] = [];
  /** The job that took the snapshot this staging was decoded from; undefined for a fresh one or a CKS1 snapshot. */
  origin: string | undefined;
  readonly #pending = new Map<number, Uint8Array[]>();
  /** Encodings of pending groups, made by `encode` and dropped when a group changes. */
  readonly #encoded = new Map<number, Uint8Array>();

  /** Stages one record of the interval in progress. */
  stage(bytes: Uint8Array): void {
    this.#current.push(bytes);
  }

  /** Records staged since the last seal. */
  get staged(): number {
    return this.#current.length;
  }

  /** Checkpoint ids with pending records, ascending. */
  get pendingIds(): number[] {
    return [...this.#pending.keys()].sort((a, b) => a - b);
  }

  /** Makes the records staged so far pending(`checkpointId`). */
  seal(checkpointId: number): void {
    if (this.#current.length === 0) return;
    const earlier = this.#pending.get(checkpointId);
    // concat, not push(...): a checkpoint interval may stage more records than a call takes arguments.
    this.#pending.set(checkpointId, earlier === undefined ? this.#current : earlier.concat(this.#current));
    this.#encoded.delete(checkpointId);
    this.#current = [];
  }

  /** The pending groups of checkpoints ≤ `checkpointId`, ascending. */
  committable(checkpointId: number): [number, Uint8Array[]][] {
    return this.pendingIds.filter((k) => k <= checkpointId).map((k) => [k, this.#pending.get(k) ?? []]);
  }

  /** Forgets pending(`checkpointId`) (published). */
  drop(checkpointId: number): void {
    this.#pending.delete(checkpointId);
    this.#encoded.delete(checkpointId);
  }

  /** The pending groups as snapshot bytes of job `jobId` (records not sealed yet are not part of it). */
  encode(jobId: string): Uint8Array {
    const job = new TextEncoder().encode(jobId);
    const groups = this.pendingIds.map((k) => this.#groupBytes(k));
    const head = 10 + job.length;
    const out = new Uint8Array(head + groups.reduce((n, g) => n + g.length, 0));
    out.set(MAGIC, 0);
    const view = new DataView(out.buffer);
    view.setUint16(4, job.length);
    out.set(job, 6);
    view.setUint32(6 + job.length, groups.length);
    let at = head;
    for (const group of groups) {
      out.set(group, at);
      at += group.length;
    }
    return out;
  }

  /** One group's encoding: its id, record count and records. */
  #groupBytes(k: number): Uint8Array {
    const known = this.#encoded.get(k);
    if (known !== undefined) return known;
    const records = this.#pending.get(k) ?? [];
    const out = new Uint8Array(12 + records.reduce((n, r) => n + 4 + r.length, 0));
    const view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(k));
    view.setUint32(8, records.length);
    let at = 12;
    for (const r of records) {
      view.setUint32(at, r.length);
      out.set(r, at + 4);
      at += 4 + r.length;
    }
    this.#encoded.set(k, out);
    return out;
  }

  /** Decodes what `encode` wrote; throws `CkptError('MALFORMED')` for anything else. */
  static decode(bytes: Uint8Array): SinkStaging {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const need = (at: number, n: number): void => {
      if (at + n > bytes.length) throw new CkptError('MALFORMED', 'sink snapshot is truncated');
    };
    need(0, 8);
    const v1 = MAGIC_V1.every((b, i) => bytes[i] === b);
    if (!v1 && MAGIC.some((b, i) => bytes[i] !== b))
      throw new CkptError('MALFORMED', 'sink snapshot has a wrong header');
    const staging = new SinkStaging();
    let at = 4;
    if (!v1) {
      const length = view.getUint16(4);
      need(6, length + 4);
      staging.origin = new TextDecoder().decode(bytes.subarray(6, 6 + length));
      at = 6 + length;
    }
    const count = view.getUint32(at);
    at += 4;
    for (let g = count; g > 0; g -= 1) {
      need(at, 12);
      const k = Number(view.getBigUint64(at));
      const records: Uint8Array[] = [];
      let count = view.getUint32(at + 8);
      at += 12;
      for (; count > 0; count -= 1) {
        need(at, 4);
        const length = view.getUint32(at);
        need(at + 4, length);
        records.push(bytes.slice(at + 4, at + 4 + length));
        at += 4 + length;
      }
      staging.#pending.set(k, records);
    }
    if (at !== bytes.length) throw new CkptError('MALFORMED', 'sink snapshot has trailing bytes');
    return staging;
  }
}
