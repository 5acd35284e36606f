/**
 * A fixed set of worker processes (`sdk-worker-child.ts`), each running one
 * SDK worker of the job measured at a time, with its end of the floor
 * beside it. A job's tasks are split into contiguous slices, one per
 * process used.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import type { AckedCheckpoint, FloorEnd, SdkWorkerStart } from './sdk-worker-child.js';
import { split } from './worker-pool.js';

const SDK_WORKER_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'sdk-worker-child.ts');

/** Worker processes running SDK workers of one job at a time. */
export class SdkWorkerPool {
  readonly #children: BenchChild[];
  /** The processes running a worker of the current job. */
  #attached: BenchChild[] = [];

  private constructor(children: BenchChild[]) {
    this.#children = children;
  }

  /** Forks `size` worker processes. */
  static start(size: number): SdkWorkerPool {
    const children = Array.from({ length: size }, (_, i) =>
      forkBenchChild(`SDK worker process ${i}`, SDK_WORKER_CHILD),
    );
    return new SdkWorkerPool(children);
  }

  /** Processes in the pool. */
  get size(): number {
    return this.#children.length;
  }

  /** Processes running a worker of the current job. */
  get attached(): number {
    return this.#attached.length;
  }

  /**
   * Starts one SDK worker per process (as many as there are tasks at most)
   * with a slice of `taskIds`, and connects each process's floor end.
   * Resolves once every worker is attached.
   */
  async start(
    target: Omit<SdkWorkerStart, 'workerId' | 'taskIds'>,
    taskIds: readonly string[],
    floor: FloorEnd,
  ): Promise<void> {
    if (this.#attached.length > 0) throw new Error('the pool runs a job already; close it first');
    const slices = split(taskIds, Math.min(this.#children.length, taskIds.length));
    this.#attached = this.#children.slice(0, slices.length);
    await Promise.all(
      slices.map(async (slice, i) => {
        const child = this.#children[i]!;
        await child.request<void>({ kind: 'floor', ...floor });
        const start: SdkWorkerStart = { ...target, workerId: `bench-sdk-worker-${i}`, taskIds: slice };
        await child.request<void>({ kind: 'start', ...start });
      }),
    );
  }

  /** Each worker's bytes of its acknowledgements of `checkpointId`, once accepted; they answer the next floor trigger. */
  prepare(checkpointId: number): Promise<AckedCheckpoint[]> {
    return Promise.all(
      this.#attached.map((child) => child.request<AckedCheckpoint>({ kind: 'prepare', checkpointId })),
    );
  }

  /** Stops the workers and floor ends; the processes stay for the next job. */
  async close(): Promise<void> {
    const attached = this.#attached;
    this.#attached = [];
    await Promise.all(attached.map((child) => child.request<void>({ kind: 'close' })));
  }

  /** Ends every process. */
  async stop(): Promise<void> {
    this.#attached = [];
    await Promise.all(this.#children.map((child) => child.stop()));
  }
}
