/**
 * A worker's own Prometheus metrics (prom-client), opt-in through
 * `WorkerOptions.metrics`: registered into the caller's registry, served
 * at `GET /metrics` on an address of the worker's own, or both.
 *
 * Every series is one task's: labels `job_id` and `task_id` (Prometheus
 * keeps `job` for the scrape job); checkpoint ids are never labels. The
 * snapshot figures are those of acknowledgements the coordinator
 * accepted, as they were sent.
 *
 * Records are counted in plain numbers the task's loop adds to, read when
 * scraped: the hot path pays an addition, not a label lookup.
 */
import type { EventEmitter } from 'node:events';
import { Counter, Histogram, Registry } from 'prom-client';
import type { TaskSnapshot } from '../gen/ckpt/v1/TaskSnapshot.js';
import type { Logger } from '../log/index.js';
import { SIZE_BUCKETS_BYTES } from '../metrics/buckets.js';
import { startHttpEndpoint, type HttpEndpoint } from '../metrics/http-endpoint.js';
import type { CheckpointCallEvent, RestoredEvent, WorkerEventMap } from './events.js';
import type { WorkerMetricsConfig } from './options.js';

/** Buckets of the worker's durations: 1 ms to 5 minutes. */
export const WORKER_DURATION_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
];

/** What one task's hot paths count; monotonic, read when scraped. */
export interface TaskCounts {
  /** Records the task took from its inputs; for a source, messages it handled. */
  recordsIn: number;
  /** Records of the task's inputs that reached it in its epoch, processed or still queued (tasks with inputs). */
  recordsReceived: number;
  /** Records the task published to downstream tasks (one per downstream task a record goes to). */
  recordsOut: number;
}

type Label = 'job_id' | 'task_id';
type Labels = Record<Label, string>;

/** One task's counts, as the collectors of a registry read them. */
interface CountSource {
  labels: Labels;
  counts: TaskCounts;
}

/** The metric families in one registry, shared by every worker registered into it. */
class Families {
  readonly sources = new Set<CountSource>();
  readonly acknowledged: Counter<Label>;
  readonly declined: Counter<Label>;
  readonly restores: Counter<Label>;
  readonly alignment: Histogram<Label>;
  readonly syncDuration: Histogram<Label>;
  readonly asyncDuration: Histogram<Label>;
  readonly startDelay: Histogram<Label>;
  readonly size: Histogram<Label | 'kind'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames: Label[] = ['job_id', 'task_id'];
    const counted = (name: string, help: string, read: (c: TaskCounts) => number): void => {
      const sources = this.sources;
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const s of sources) this.inc(s.labels, read(s.counts));
        },
      });
    };
    counted(
      'ckpt_worker_records_in_total',
      'Records each task took from its inputs (a source: messages it handled).',
      (c) => c.recordsIn,
    );
    counted(
      'ckpt_worker_records_received_total',
      'Records that reached each task from its inputs, processed or still queued (held back by alignment, or waiting for the task).',
      (c) => c.recordsReceived,
    );
    counted(
      'ckpt_worker_records_out_total',
      'Records each task published, one per downstream task a record went to.',
      (c) => c.recordsOut,
    );
    const counter = (name: string, help: string): Counter<Label> => new Counter({ name, help, labelNames, registers });
    this.acknowledged = counter(
      'ckpt_worker_checkpoints_acknowledged_total',
      'Snapshots of each task whose acknowledgement the coordinator accepted.',
    );
    this.declined = counter(
      'ckpt_worker_checkpoints_declined_total',
      'Checkpoints each task declined, as the coordinator accepted the decline.',
    );
    this.restores = counter('ckpt_worker_restores_total', 'Times each task restored its state from a checkpoint.');
    const seconds = (name: string, help: string): Histogram<Label> =>
      new Histogram({ name, help, labelNames, buckets: WORKER_DURATION_BUCKETS_SECONDS, registers });
    this.alignment = seconds(
      'ckpt_worker_alignment_seconds',
      "Each acknowledged snapshot's barrier alignment: first barrier to the last (unaligned: to the last input's).",
    );
    this.syncDuration = seconds(
      'ckpt_worker_snapshot_sync_seconds',
      'The synchronous part of each acknowledged snapshot: the state serialised, barriers forwarded.',
    );
    this.asyncDuration = seconds(
      'ckpt_worker_snapshot_async_seconds',
      'The asynchronous part of each acknowledged snapshot: the state stored.',
    );
    this.startDelay = seconds(
      'ckpt_worker_checkpoint_start_delay_seconds',
      "Each acknowledged snapshot's trigger (coordinator clock) to the task starting it (worker clock); 0 when unknown.",
    );
    this.size = new Histogram({
      name: 'ckpt_worker_snapshot_size_bytes',
      help: 'Sizes of each acknowledged snapshot: kind="state" is the whole state, kind="persisted" what it stored.',
      labelNames: [...labelNames, 'kind'],
      buckets: SIZE_BUCKETS_BYTES,
      registers,
    });
  }

  /** The counters with one series per task. */
  get counters(): Counter<Label>[] {
    return [this.acknowledged, this.declined, this.restores];
  }

  /** The histograms with one series per task (the size histogram has one per task and kind). */
  get histograms(): Histogram<Label>[] {
    return [this.alignment, this.syncDuration, this.asyncDuration, this.startDelay];
  }
}

/** The families of each registry a worker registered into. */
const FAMILIES = new WeakMap<Registry, Families>();

function familiesOf(registry: Registry): Families {
  let families = FAMILIES.get(registry);
  if (families === undefined) {
    families = new Families(registry);
    FAMILIES.set(registry, families);
  }
  return families;
}

const SIZE_KINDS = ['state', 'persisted'] as const;

/** What a worker's metrics are for. */
export interface WorkerMetricsDeps {
  jobId: string;
  taskIds: readonly string[];
  /** The worker: its acknowledgement, decline and restore events are counted. */
  events: EventEmitter<WorkerEventMap>;
  logger: Logger;
}

/** One worker's metrics, its series and, when asked for, its `/metrics` endpoint. */
export class WorkerMetrics {
  /** The registry the metrics are in: the caller's, or the worker's own. */
  readonly registry: Registry;
  readonly #families: Families;
  readonly #d: WorkerMetricsDeps;
  readonly #tasks = new Map<string, CountSource>();
  readonly #onAcked = (e: WorkerEventMap['checkpoint-acked'][0]): void => this.#acknowledged(e.snapshots);
  readonly #onDeclined = (e: CheckpointCallEvent): void => this.#declined(e);
  readonly #onRestored = (e: RestoredEvent): void => this.#restored(e);
  #endpoint: HttpEndpoint | undefined;

  private constructor(registry: Registry, deps: WorkerMetricsDeps) {
    this.registry = registry;
    this.#families = familiesOf(registry);
    this.#d = deps;
    for (const taskId of deps.taskIds) this.#addTask(taskId);
    deps.events.on('checkpoint-acked', this.#onAcked);
    deps.events.on('checkpoint-declined', this.#onDeclined);
    deps.events.on('restored', this.#onRestored);
  }

  /**
   * Registers the series of the worker's tasks (at zero) and, with
   * `config.listen`, serves them; rejects with a `CkptError` (UNAVAILABLE)
   * when that address cannot be bound, having registered nothing.
   */
  static async start(config: WorkerMetricsConfig, deps: WorkerMetricsDeps): Promise<WorkerMetrics> {
    const metrics = new WorkerMetrics(config.registry ?? new Registry(), deps);
    if (config.listen === undefined) return metrics;
    try {
      const { registry } = metrics;
      const routes = new Map([
        ['/metrics', async () => ({ status: 200, type: registry.contentType, body: await registry.metrics() })],
      ]);
      metrics.#endpoint = await startHttpEndpoint({ listen: config.listen, routes, logger: deps.logger });
    } catch (err) {
      await metrics.close();
      throw err;
    }
    return metrics;
  }

  /** Where `/metrics` is served, host:port with the port bound; undefined when not served. */
  get address(): string | undefined {
    return this.#endpoint?.address;
  }

  /** The counts of `taskId`, for its hot paths; undefined for a task of another worker. */
  counts(taskId: string): TaskCounts | undefined {
    return this.#tasks.get(taskId)?.counts;
  }

  /** Stops serving and removes the worker's series (a registry shared with others keeps theirs). */
  async close(): Promise<void> {
    const { events } = this.#d;
    events.off('checkpoint-acked', this.#onAcked);
    events.off('checkpoint-declined', this.#onDeclined);
    events.off('restored', this.#onRestored);
    const families = this.#families;
    for (const source of this.#tasks.values()) {
      families.sources.delete(source);
      for (const family of [...families.counters, ...families.histograms]) family.remove(source.labels);
      for (const kind of SIZE_KINDS) families.size.remove({ ...source.labels, kind });
    }
    this.#tasks.clear();
    await this.#endpoint?.close();
    this.#endpoint = undefined;
  }

  #addTask(taskId: string): void {
    const source = {
      labels: { job_id: this.#d.jobId, task_id: taskId },
      counts: { recordsIn: 0, recordsReceived: 0, recordsOut: 0 },
    };
    this.#tasks.set(taskId, source);
    const families = this.#families;
    families.sources.add(source);
    for (const counter of families.counters) counter.inc(source.labels, 0);
    for (const histogram of families.histograms) histogram.zero(source.labels);
    for (const kind of SIZE_KINDS) families.size.zero({ ...source.labels, kind });
  }

  #acknowledged(snapshots: readonly TaskSnapshot[]): void {
    const families = this.#families;
    for (const snapshot of snapshots) {
      const labels = this.#tasks.get(snapshot.taskId ?? '')?.labels;
      if (labels === undefined) continue;
      const m = snapshot.metrics ?? {};
      families.acknowledged.inc(labels);
      families.alignment.observe(labels, Number(m.alignmentMs ?? 0) / 1000);
      families.syncDuration.observe(labels, Number(m.syncMs ?? 0) / 1000);
      families.asyncDuration.observe(labels, Number(m.asyncMs ?? 0) / 1000);
      families.startDelay.observe(labels, Number(m.startDelayMs ?? 0) / 1000);
      families.size.observe({ ...labels, kind: 'state' }, Number(m.stateSizeBytes ?? 0));
      families.size.observe({ ...labels, kind: 'persisted' }, Number(m.persistedBytes ?? 0));
    }
  }

  #declined(event: CheckpointCallEvent): void {
    for (const taskId of event.taskIds) {
      const labels = this.#tasks.get(taskId)?.labels;
      if (labels !== undefined) this.#families.declined.inc(labels);
    }
  }

  /** Counted only for a checkpoint: a start from empty state (checkpoint 0) restores nothing. */
  #restored(event: RestoredEvent): void {
    if (event.checkpointId === 0) return;
    for (const taskId of event.taskIds) {
      const labels = this.#tasks.get(taskId)?.labels;
      if (labels !== undefined) this.#families.restores.inc(labels);
    }
  }
}
