/**
 * The etcd adapter: `CheckpointStore` on etcd, its options, the key layout
 * for tools that read etcd directly, the translation of etcd errors (also
 * for the leader election's calls), and the error of a stored record found
 * corrupt.
 */
export { EtcdStore, createEtcdStore } from './etcd-store.js';
export type { CommitGuard } from './commit.js';
export {
  resolveEtcdStoreOptions,
  DEFAULT_PREFIX,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_MAX_REQUEST_BYTES,
  DEFAULT_MAX_TXN_OPS,
  DEFAULT_PART_BYTES,
  DEFAULT_PART_CONCURRENCY,
  DEFAULT_COMPRESS_MANIFEST_ABOVE_BYTES,
  DEFAULT_MAX_MANIFEST_BYTES,
  MAX_MAX_MANIFEST_BYTES,
  MAX_RESPONSE_BYTES,
  type EtcdStoreOptions,
  ETCD_REQUEST_KINDS,
  type ResolvedEtcdStoreOptions,
  type EtcdRequestKind,
  type EtcdRequestObserver,
} from './options.js';
export { KeyLayout, pad, unpad, type ParsedKey } from './keys.js';
export { callEtcd, translateEtcdError } from './translate-error.js';
export { etcdHostBreaker } from './host-breaker.js';
export { CorruptRecordError, type CorruptRecordReason } from './corrupt-record.js';
export { MAX_CHECKPOINT_KEYS, MAX_STORED_COUNTER } from './record-limits.js';
