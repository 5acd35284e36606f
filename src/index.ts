/**
 * The public entry of the `ckpt` package: the worker SDK, the typed gRPC
 * clients of the coordinator, and the error type.
 */
export * from './sdk/index.js';
export * from './client/index.js';
export { CkptError, hasReason } from './core/errors.js';
export type { CkptErrorOptions, ErrorIds, ErrorReason } from './core/errors.js';
