/**
 * The etcd adapter: `CheckpointStore` on etcd, its options, and the key
 * layout for tools that read etcd directly.
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
  type EtcdStoreOptions,
  type ResolvedEtcdStoreOptions,
} from './options.js';
export { KeyLayout, pad, unpad, type ParsedKey } from './keys.js';
export { translateEtcdError } from './translate-error.js';
