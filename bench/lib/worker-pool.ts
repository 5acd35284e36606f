/**
 * A fixed set of worker processes (`worker-child.ts`) that run a job's
 * simulated workers: the job's tasks are split into contiguous slices, one
 * simulated worker each, and each worker batches its slice's
 * acknowledgements into one call per checkpoint.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { forkBenchChild, type BenchChild } from './bench-child.js';
import type { AckCommand, AckReport, WorkerStart } from './worker-child.js';

const WORKER_CHILD = join(dirname(fileURLToPath(import.meta.url)), 'worker-child.ts');

/** Where the workers attach. */
export interface PoolTarget {
  coordinator: string;
  nats: string[];
  subjectPrefix: string;
}

/** Worker processes running the simulated workers of one job at a time. */
export class WorkerPool {
  readonly #children: BenchChild[];
  /** The processes with simulated workers attached. */
  #attached: BenchChild[] = [];

  private constructor(children: BenchChild[]) {
    this.#children = children;
  }

  /** Forks `size` worker processes. */
  static start(size: number): WorkerPool {
    return new WorkerPool(Array.from({ length: size }, (_, i) => forkBenchChild(`worker process ${i}`, WORKER_CHILD)));
  }

  /** Processes in the pool. */
  get size(): number {
    return this.#children.length;
  }

  /**
   * Attaches the tasks of `spec` with `behaviour` for every task: split
   * into `perProcess` simulated workers per process (as many in all as
   * there are tasks at most), spread round-robin over the processes.
   * Resolves once every worker has its welcome.
   */
  async attach(target: PoolTarget, spec: JobSpec, behaviour: WorkerStart['behaviour'], perProcess = 1): Promise<void> {
    if (this.#attached.length > 0) throw new Error('the pool runs a job already; detach it first');
    const taskIds = (spec.tasks ?? []).map((t) => t.taskId ?? '');
    const slices = split(taskIds, Math.min(this.#children.length * perProcess, taskIds.length));
    this.#attached = this.#children.slice(0, slices.length);
    await Promise.all(
      slices.map((slice, i) => {
        const start: WorkerStart = {
          ...target,
          jobId: spec.jobId ?? '',
          spec,
          workerId: `bench-worker-${i}`,
          taskIds: slice,
          behaviour,
        };
        return this.#children[i % this.#children.length]!.request<void>({ kind: 'start', ...start });
      }),
    );
  }

  /** Every attached worker sends `command`; resolves with each process's report. */
  acknowledge(command: AckCommand): Promise<AckReport[]> {
    return Promise.all(this.#attached.map((child) => child.request<AckReport>({ kind: 'ack', ...command })));
  }

  /** Closes the simulated workers; the processes stay for the next job. */
  async detach(): Promise<void> {
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

/** `items` in `parts` contiguous slices whose sizes differ by at most one. */
export function split<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = Math.floor(items.length / parts) + (i < items.length % parts ? 1 : 0);
    out.push(items.slice(start, start + size));
    start += size;
  }
  return out;
}
