/**
 * Checkpoint ids without an etcd write per trigger. The coordinator reserves
 * a block of ids by raising the job's id floor in etcd ("every id below the
 * floor may have been used"); it then hands out ids from the block in
 * memory. After a restart, ids start at the stored floor, above every id an
 * earlier coordinator could have used, so ids strictly increase and are
 * never reused, at the cost of gaps.
 */

/** @default 1000 ids reserved per etcd write. */
export const DEFAULT_ID_BLOCK_SIZE = 1000;

/** Hands out ids from reserved blocks. */
export class IdAllocator {
  private next: number;
  private reservedBelow: number;

  /** `start`: the first id this allocator may use (the stored floor). */
  constructor(start: number) {
    if (!Number.isSafeInteger(start) || start < 1) throw new Error(`invalid first checkpoint id ${start}`);
    this.next = start;
    this.reservedBelow = start;
  }

  /** The id the next checkpoint gets. */
  get nextId(): number {
    return this.next;
  }

  /** True when the next id is covered by a reservation. */
  hasReserved(): boolean {
    return this.next < this.reservedBelow;
  }

  /** The floor to write to etcd to reserve a block after the next id. */
  floorToReserve(blockSize: number = DEFAULT_ID_BLOCK_SIZE): number {
    return this.next + blockSize;
  }

  /** Records that etcd now holds `floor`. */
  reserved(floor: number): void {
    if (floor > this.reservedBelow) this.reservedBelow = floor;
  }

  /** Takes the next id; throws if it is not reserved. */
  take(): number {
    if (!this.hasReserved()) throw new Error(`checkpoint id ${this.next} is not reserved`);
    const id = this.next;
    this.next += 1;
    return id;
  }
}
