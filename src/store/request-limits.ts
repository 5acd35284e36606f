/**
 * Size and operation-count checks made before a request is sent. etcd
 * rejects a request above `--max-request-bytes` or a transaction above
 * `--max-txn-ops`; the client would retry the rejection and then stop
 * calling etcd for seconds, so the store refuses such requests itself.
 */
import type { ICompare, IRequestOp, ITxnRequest } from 'etcd3';
import { CkptError } from '../core/errors.js';
import type { EtcdCallContext } from './translate-error.js';

/**
 * Upper bound of the protobuf framing around one compare or operation:
 * tags, length prefixes and small scalar fields.
 */
export const OP_OVERHEAD_BYTES = 32;
/** Upper bound of the framing of a whole request. */
export const REQUEST_OVERHEAD_BYTES = 64;

/** The limits a request must respect. */
export interface RequestLimits {
  maxRequestBytes: number;
  maxTxnOps: number;
}

/** Estimated encoded size of one transaction operation; never an underestimate. */
export function opBytes(op: IRequestOp): number {
  const put = op.request_put;
  if (put !== undefined) return OP_OVERHEAD_BYTES + (put.key?.length ?? 0) + (put.value?.length ?? 0);
  const range = op.request_range ?? op.request_delete_range;
  if (range !== undefined) return OP_OVERHEAD_BYTES + (range.key?.length ?? 0) + (range.range_end?.length ?? 0);
  if (op.request_txn !== undefined) return OP_OVERHEAD_BYTES + txnBytes(op.request_txn);
  return OP_OVERHEAD_BYTES;
}

/** Estimated encoded size of one compare. */
export function compareBytes(compare: ICompare): number {
  return (
    OP_OVERHEAD_BYTES + (compare.key?.length ?? 0) + (compare.value?.length ?? 0) + (compare.range_end?.length ?? 0)
  );
}

/** Estimated encoded size of a transaction request. */
export function txnBytes(request: ITxnRequest): number {
  let bytes = REQUEST_OVERHEAD_BYTES;
  for (const compare of request.compare ?? []) bytes += compareBytes(compare);
  for (const op of request.success ?? []) bytes += opBytes(op);
  for (const op of request.failure ?? []) bytes += opBytes(op);
  return bytes;
}

/**
 * Throws OVERSIZED when the transaction has more compares, or more
 * operations in a branch, than `maxTxnOps`, or is larger than `maxRequestBytes`.
 */
export function assertTxnFits(request: ITxnRequest, limits: RequestLimits, context: EtcdCallContext): void {
  const ops = Math.max(request.compare?.length ?? 0, request.success?.length ?? 0, request.failure?.length ?? 0);
  if (ops > limits.maxTxnOps) {
    throw oversized(context, `needs a transaction of ${ops} operations, more than maxTxnOps (${limits.maxTxnOps})`);
  }
  assertBytesFit(txnBytes(request), limits, context);
}

/** Throws OVERSIZED when putting `value` at `key` would exceed `maxRequestBytes`. */
export function assertPutFits(key: string, value: Uint8Array, limits: RequestLimits, context: EtcdCallContext): void {
  assertBytesFit(REQUEST_OVERHEAD_BYTES + Buffer.byteLength(key) + value.length, limits, context);
}

function assertBytesFit(bytes: number, limits: RequestLimits, context: EtcdCallContext): void {
  if (bytes > limits.maxRequestBytes) {
    throw oversized(
      context,
      `needs an etcd request of about ${bytes} bytes, more than maxRequestBytes (${limits.maxRequestBytes})`,
    );
  }
}

function oversized(context: EtcdCallContext, problem: string): CkptError {
  const { operation, ...ids } = context;
  return new CkptError('OVERSIZED', `${operation} ${problem}; nothing was sent`, ids);
}
