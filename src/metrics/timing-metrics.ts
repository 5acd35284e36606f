/**
 * How long things take in a coordinator process: the etcd requests of its
 * store (leader and standby alike), and, from the coordinators it runs,
 * acknowledgements, commits and worker sessions. The store and the
 * coordinator know nothing of Prometheus: they call the observer
 * interfaces this class implements.
 *
 * The histograms record whatever this process did, the last moments of a
 * term it lost included (a session its stop ended, a commit in flight).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { CoordinatorObserver } from '../coordinator/observer.js';
import { ETCD_REQUEST_KINDS, type EtcdRequestKind, type EtcdRequestObserver } from '../store/index.js';
import {
  COMMIT_BUCKETS_SECONDS,
  DURATION_BUCKETS_SECONDS,
  ETCD_BUCKETS_SECONDS,
  SESSION_BUCKETS_SECONDS,
} from './buckets.js';

/** The timing histograms of one process, registered in its registry. */
export class TimingMetrics implements EtcdRequestObserver, CoordinatorObserver {
  readonly #etcd: Histogram<'operation'>;
  readonly #etcdFailures: Counter<'operation'>;
  readonly #commit: Histogram<'job_id'>;
  readonly #ack: Histogram<'job_id'>;
  readonly #session: Histogram<'job_id'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#etcd = new Histogram({
      name: 'ckpt_etcd_request_duration_seconds',
      help: "Duration of each etcd request of the coordinator's store, by kind (txn, get, put, range), the client's retries included.",
      labelNames: ['operation'],
      buckets: ETCD_BUCKETS_SECONDS,
      registers,
    });
    this.#etcdFailures = new Counter({
      name: 'ckpt_etcd_request_failures_total',
      help: "etcd requests of the coordinator's store that failed (unavailable, timed out, refused), by kind.",
      labelNames: ['operation'],
      registers,
    });
    // Every kind shows from the start, so that rates exist before the first request (a standby sends few).
    for (const operation of ETCD_REQUEST_KINDS) {
      this.#etcd.zero({ operation });
      this.#etcdFailures.inc({ operation }, 0);
    }
    this.#commit = new Histogram({
      name: 'ckpt_checkpoint_commit_duration_seconds',
      help: 'Duration of the etcd commit of each fully acknowledged checkpoint, per job.',
      labelNames: ['job_id'],
      buckets: COMMIT_BUCKETS_SECONDS,
      registers,
    });
    this.#ack = new Histogram({
      name: 'ckpt_checkpoint_ack_latency_seconds',
      help: "Trigger of a checkpoint to the coordinator's receipt of a task's acknowledgement, per job; one observation per task.",
      labelNames: ['job_id'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.#session = new Histogram({
      name: 'ckpt_worker_session_duration_seconds',
      help: 'How long worker sessions lasted, observed when each ends, per job.',
      labelNames: ['job_id'],
      buckets: SESSION_BUCKETS_SECONDS,
      registers,
    });
  }

  request(kind: EtcdRequestKind, durationMs: number, failed: boolean): void {
    this.#etcd.observe({ operation: kind }, seconds(durationMs));
    if (failed) this.#etcdFailures.inc({ operation: kind });
  }

  acknowledged(jobId: string, tasks: number, latencyMs: number): void {
    const latency = seconds(latencyMs);
    for (let i = 0; i < tasks; i += 1) this.#ack.observe({ job_id: jobId }, latency);
  }

  committed(jobId: string, durationMs: number): void {
    this.#commit.observe({ job_id: jobId }, seconds(durationMs));
  }

  sessionEnded(jobId: string, durationMs: number): void {
    this.#session.observe({ job_id: jobId }, seconds(durationMs));
  }
}

/** Milliseconds in seconds; a clock that went backwards, or no number at all, counts as 0. */
function seconds(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms / 1000 : 0;
}
