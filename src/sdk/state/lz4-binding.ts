/**
 * The LZ4 block codec of the `lz4-napi` package (lz4_flex behind N-API,
 * run on libuv's thread pool), loaded on first use: a platform without its
 * prebuilt binary then fails only the pieces that use LZ4, with an error
 * that says why, instead of every import of the SDK.
 */
import { createRequire } from 'node:module';
import { CkptError } from '../../core/errors.js';

/** What the SDK uses of `lz4-napi`; both calls run off the event loop. */
export interface Lz4Binding {
  /** An LZ4 block after the input's length as 4 bytes little-endian. */
  compress(data: Uint8Array): Promise<Buffer>;
  /** The inverse of `compress`; rejects when the block does not decode into the stated length. */
  uncompress(data: Uint8Array): Promise<Buffer>;
}

/** The npm package that provides the binding. */
export const LZ4_PACKAGE = 'lz4-napi';

let loaded: Lz4Binding | CkptError | undefined;

/** The binding; throws INTERNAL naming the package when it cannot be loaded (and on every later call). */
export function lz4Binding(): Lz4Binding {
  loaded ??= load();
  if (loaded instanceof CkptError) throw loaded;
  return loaded;
}

function load(): Lz4Binding | CkptError {
  try {
    // A CommonJS native module: require() loads it synchronously and once.
    const binding = createRequire(import.meta.url)(LZ4_PACKAGE) as Partial<Lz4Binding>;
    if (typeof binding.compress !== 'function' || typeof binding.uncompress !== 'function') {
      return new CkptError('INTERNAL', `${LZ4_PACKAGE} has no compress and uncompress functions`);
    }
    return binding as Lz4Binding;
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return new CkptError('INTERNAL', `LZ4 compression needs ${LZ4_PACKAGE}, which cannot be loaded: ${detail}`, {
      cause: err,
    });
  }
}
