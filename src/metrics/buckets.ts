/** The bucket bounds of the coordinator's histograms, in seconds or bytes. */
import { exponentialBuckets } from 'prom-client';

/** Buckets of `ckpt_checkpoint_duration_seconds` and the acknowledgement latency: 10 ms to 10 minutes. */
export const DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Buckets of `ckpt_checkpoint_size_bytes`: 1 KiB to 64 GiB, ×4. */
export const SIZE_BUCKETS_BYTES = exponentialBuckets(1024, 4, 14);

/** Buckets of `ckpt_etcd_request_duration_seconds`: 1 ms to 30 s (the client retries each request). */
export const ETCD_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Buckets of `ckpt_checkpoint_commit_duration_seconds`: 5 ms to a minute (large manifests are written in parts). */
export const COMMIT_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Buckets of `ckpt_worker_session_duration_seconds`: a second to a week. */
export const SESSION_BUCKETS_SECONDS = [
  1, 10, 60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 259_200, 604_800,
];
