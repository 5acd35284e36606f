/**
 * Options of the etcd store, and the one function that turns them into a
 * complete, validated configuration.
 */
import type { Etcd3, IOptions } from 'etcd3';
import { CkptError } from '../core/errors.js';
import { silentLogger, type Logger } from '../log/index.js';

/** Default key prefix of everything the store writes. */
export const DEFAULT_PREFIX = '/ckpt/';
/** Default deadline of every unary etcd call, in milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/**
 * Default largest request the store sends. etcd refuses requests above its
 * `--max-request-bytes` (1.5 MiB = 1,572,864 bytes by default); this leaves
 * about 70 KiB below it for framing the size estimate does not see.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 1_500_000;
/** Default most operations in one transaction; etcd's `--max-txn-ops` default. */
export const DEFAULT_MAX_TXN_OPS = 128;
/** Default largest manifest part, 1 MiB. */
export const DEFAULT_PART_BYTES = 1_048_576;
/** Default number of manifest parts written or read at once. */
export const DEFAULT_PART_CONCURRENCY = 4;
/** Default of `EtcdStoreOptions.compressManifestAboveBytes`. */
export const DEFAULT_COMPRESS_MANIFEST_ABOVE_BYTES = 8192;
/**
 * Default of `EtcdStoreOptions.maxManifestBytes`, 256 MiB: a manifest of
 * 100,000 tasks (the most a job may have) at about 2.6 KiB per task, far
 * above the 100 to 300 bytes a task's state handle, positions and metrics
 * take.
 */
export const DEFAULT_MAX_MANIFEST_BYTES = 268_435_456;
/** Largest `maxManifestBytes` accepted: 1 GiB, a quarter of the largest Buffer. */
export const MAX_MAX_MANIFEST_BYTES = 1_073_741_824;
/**
 * Largest response the client the store creates accepts (grpc-js accepts
 * 4 MiB by default). Reading one job takes one response with up to six
 * values, each as large as one etcd request (1.5 MiB by default, 10 MiB at
 * most as etcd advises); a larger response would fail, and the client
 * would retry it and stop calling etcd for 5 s, failing every job's load.
 */
export const MAX_RESPONSE_BYTES = 67_108_864;
/**
 * Room a single-part request needs beside the part's bytes: its key
 * (prefix, job id, 64 hex digits) and the protobuf framing.
 */
export const PART_REQUEST_OVERHEAD_BYTES = 4_096;
/** Longest key prefix accepted, so that keys stay far below etcd's limits. */
export const MAX_PREFIX_LENGTH = 1_024;

/** How to reach etcd and how to lay out and size what is stored there. */
export interface EtcdStoreOptions {
  /**
   * etcd client URLs, e.g. `['http://127.0.0.1:2379']`. Required unless
   * `client` is given.
   */
  hosts?: string[];
  /**
   * An existing client to use instead of creating one. The store does not
   * close it, and `requestTimeoutMs` does not apply to it: its own default
   * call options do. Give it `grpcOptions` with
   * `grpc.max_receive_message_length` of at least `MAX_RESPONSE_BYTES`, as
   * the store's own client has: else one job whose records hold values too
   * large for one response of the default 4 MiB fails every job's load.
   * @default undefined (the store creates and owns a client)
   */
  client?: Etcd3;
  /**
   * Prefix of every key the store reads or writes; must end with `/`.
   * @default '/ckpt/'
   */
  prefix?: string;
  /**
   * Deadline of every unary call of the client the store creates. Without
   * one, a write during an etcd leader loss blocks for several seconds.
   * @default 5000
   */
  requestTimeoutMs?: number;
  /**
   * Largest request sent to etcd, estimated before sending; larger ones are
   * refused with OVERSIZED instead of being sent (etcd would reject them,
   * and the client would retry and then stop calling etcd for 5 s).
   * @default 1500000
   */
  maxRequestBytes?: number;
  /**
   * Most compares, or most operations of either branch, in one transaction;
   * etcd's `--max-txn-ops`.
   * @default 128
   */
  maxTxnOps?: number;
  /**
   * Largest part of a manifest stored in parts. Must leave 4096 bytes below
   * `maxRequestBytes` for the part's key and framing.
   * @default 1048576 (1 MiB)
   */
  partBytes?: number;
  /**
   * An encoded manifest up to this size is stored inline in its root;
   * a larger one in parts. At most `partBytes`.
   * @default partBytes
   */
  inlineManifestBytes?: number;
  /**
   * An encoded manifest larger than this is stored DEFLATE-compressed
   * (fast level), which shrinks what etcd writes, and keeps in every
   * revision, by about 3× for manifests of many tasks. 0 compresses every
   * manifest; a size above `maxRequestBytes` none that fits inline.
   * @default 8192
   */
  compressManifestAboveBytes?: number;
  /**
   * Largest manifest the store commits or reads, encoded and as stored
   * (compressed). A commit above it is refused with OVERSIZED before
   * anything is sent; a stored root recording more is refused with
   * OVERSIZED before any part is read, and its inflation stops at the
   * size the root records. At most 1 GiB.
   * @default 268435456 (256 MiB)
   */
  maxManifestBytes?: number;
  /**
   * Manifest parts written or read at once.
   * @default 4
   */
  partConcurrency?: number;
  /**
   * Logger; the store logs with `component: 'store'`.
   * @default a silent logger
   */
  logger?: Logger;
  /**
   * Hears of every request the store sends to etcd once it is answered or
   * has failed, e.g. to time them for metrics.
   * @default undefined
   */
  observer?: EtcdRequestObserver;
  /**
   * TLS credentials (CA, client certificate and key) and user/password
   * auth of the client the store creates; not kept in `options`, so that
   * they never show where the options do.
   * @default undefined (plain connection, no auth)
   */
  security?: Pick<IOptions, 'credentials' | 'auth'>;
}

/**
 * The kinds of request the store sends to etcd: a transaction, a read of
 * one key, a put of one value, a page of a listing.
 */
export type EtcdRequestKind = 'txn' | 'get' | 'put' | 'range';

/** Every etcd request kind, for metrics that show each from the start. */
export const ETCD_REQUEST_KINDS: readonly EtcdRequestKind[] = Object.freeze(['txn', 'get', 'put', 'range']);

/** Hears of the store's etcd requests; must not throw. */
export interface EtcdRequestObserver {
  /**
   * One request ended after `durationMs`, the etcd client's own retries
   * included; `failed` when it threw (the store then reports an error).
   */
  request(kind: EtcdRequestKind, durationMs: number, failed: boolean): void;
}

/** `EtcdStoreOptions` with defaults applied and validated. */
export interface ResolvedEtcdStoreOptions {
  hosts: string[];
  client: Etcd3 | undefined;
  prefix: string;
  requestTimeoutMs: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  partBytes: number;
  inlineManifestBytes: number;
  compressManifestAboveBytes: number;
  maxManifestBytes: number;
  partConcurrency: number;
  logger: Logger;
  observer: EtcdRequestObserver | undefined;
}

/**
 * Applies the defaults and validates every option; throws a MALFORMED
 * `CkptError` naming the first option that is wrong.
 */
export function resolveEtcdStoreOptions(options: EtcdStoreOptions): ResolvedEtcdStoreOptions {
  const hosts = resolveHosts(options);
  const prefix = resolvePrefix(options.prefix ?? DEFAULT_PREFIX);
  const requestTimeoutMs = positiveInteger('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS);
  const maxRequestBytes = positiveInteger('maxRequestBytes', options.maxRequestBytes, DEFAULT_MAX_REQUEST_BYTES);
  const maxTxnOps = positiveInteger('maxTxnOps', options.maxTxnOps, DEFAULT_MAX_TXN_OPS);
  if (maxTxnOps < 8) invalid('maxTxnOps', `must be at least 8, got ${maxTxnOps}`);
  const partBytes = positiveInteger('partBytes', options.partBytes, DEFAULT_PART_BYTES);
  if (partBytes > maxRequestBytes - PART_REQUEST_OVERHEAD_BYTES) {
    invalid(
      'partBytes',
      `must be at most maxRequestBytes (${maxRequestBytes}) minus ${PART_REQUEST_OVERHEAD_BYTES} bytes ` +
        `for the part's key and framing, got ${partBytes}`,
    );
  }
  const inlineManifestBytes = nonNegativeInteger('inlineManifestBytes', options.inlineManifestBytes, partBytes);
  if (inlineManifestBytes > partBytes) {
    invalid('inlineManifestBytes', `must be at most partBytes (${partBytes}), got ${inlineManifestBytes}`);
  }
  const compressManifestAboveBytes = nonNegativeInteger(
    'compressManifestAboveBytes',
    options.compressManifestAboveBytes,
    DEFAULT_COMPRESS_MANIFEST_ABOVE_BYTES,
  );
  const maxManifestBytes = positiveInteger('maxManifestBytes', options.maxManifestBytes, DEFAULT_MAX_MANIFEST_BYTES);
  if (maxManifestBytes > MAX_MAX_MANIFEST_BYTES) {
    invalid('maxManifestBytes', `must be at most ${MAX_MAX_MANIFEST_BYTES}, got ${maxManifestBytes}`);
  }
  const partConcurrency = positiveInteger('partConcurrency', options.partConcurrency, DEFAULT_PART_CONCURRENCY);
  return {
    hosts,
    client: options.client,
    prefix,
    requestTimeoutMs,
    maxRequestBytes,
    maxTxnOps,
    partBytes,
    inlineManifestBytes,
    compressManifestAboveBytes,
    maxManifestBytes,
    partConcurrency,
    logger: options.logger ?? silentLogger(),
    observer: options.observer,
  };
}

function resolveHosts(options: EtcdStoreOptions): string[] {
  const hosts = options.hosts ?? [];
  if (options.client === undefined && hosts.length === 0) {
    invalid('hosts', 'must name at least one etcd client URL unless client is given');
  }
  for (const host of hosts) {
    if (typeof host !== 'string' || !/^https?:\/\/[^/\s]+\/?$/.test(host)) {
      invalid('hosts', `each host must be an http:// or https:// URL like http://127.0.0.1:2379, got ${String(host)}`);
    }
  }
  return [...hosts];
}

function resolvePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !prefix.endsWith('/')) {
    invalid('prefix', `must end with "/", got ${JSON.stringify(prefix)}`);
  }
  if (prefix.length > MAX_PREFIX_LENGTH) invalid('prefix', `must be at most ${MAX_PREFIX_LENGTH} characters`);
  return prefix;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved <= 0) {
    invalid(name, `must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

function nonNegativeInteger(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 0) {
    invalid(name, `must be a non-negative integer, got ${String(value)}`);
  }
  return resolved;
}

function invalid(option: string, problem: string): never {
  throw new CkptError('MALFORMED', `etcd store option ${option} ${problem}`);
}
