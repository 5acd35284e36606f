/**
 * Choosing a state backend from a small configuration, as a worker's
 * settings describe it.
 */
import { CkptError } from '../../core/errors.js';
import { createLocalDirectoryBackend } from './local-directory-backend.js';
import type { LocalDirectoryBackendOptions } from './local-directory-options.js';
import { createObjectStoreBackend } from './object-store-backend.js';
import type { ObjectStoreBackendOptions } from './object-store-options.js';
import type { StateBackend } from './state-backend.js';

/** Snapshots in a local directory; see `LocalDirectoryBackendOptions`. */
export interface DirectoryStateBackendConfig extends LocalDirectoryBackendOptions {
  kind: 'dir';
}

/** Snapshots in a NATS JetStream Object Store bucket; see `ObjectStoreBackendOptions`. */
export interface ObjectStoreStateBackendConfig extends ObjectStoreBackendOptions {
  kind: 'nats-obj';
}

/** Which backend keeps the snapshots, and its options. */
export type StateBackendConfig = DirectoryStateBackendConfig | ObjectStoreStateBackendConfig;

/**
 * Creates the backend `config.kind` names, with the rest of `config` as its
 * options. Rejects with MALFORMED for an unknown kind or bad options, and
 * as the chosen backend's factory does otherwise.
 */
export async function createStateBackend(config: StateBackendConfig): Promise<StateBackend> {
  switch (config.kind) {
    case 'dir': {
      const { kind: _kind, ...options } = config;
      return createLocalDirectoryBackend(options);
    }
    case 'nats-obj': {
      const { kind: _kind, ...options } = config;
      return createObjectStoreBackend(options);
    }
    default: {
      const kind: unknown = (config as { kind?: unknown }).kind;
      throw new CkptError('MALFORMED', `state backend kind must be 'dir' or 'nats-obj', got ${JSON.stringify(kind)}`);
    }
  }
}
