/**
 * Builders of raw etcd requests (compares and transaction operations) and
 * readers of their responses. The store builds transactions from these
 * directly so that it can size them before sending.
 */
import { CompareResult, CompareTarget, type ICompare, type IKeyValue, type IRequestOp, type IResponseOp } from 'etcd3';

/** The comparisons the store uses. */
export type Comparison = 'Equal' | 'Greater' | 'Less' | 'NotEqual';

/** The end of the key range that holds exactly the keys starting with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] ?? 0;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  // A prefix of only 0xff bytes: the range runs to the end of the key space.
  return Buffer.from([0]);
}

/** Puts `value` at `key`. */
export function putOp(key: string, value: Buffer | string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value) } };
}

/** Reads `key`, or only its revisions when `keysOnly`. */
export function getOp(key: string, keysOnly = false): IRequestOp {
  return { request_range: { key: Buffer.from(key), keys_only: keysOnly } };
}

/** Reads every key starting with `prefix` (at most `limit` of them, if given), in key order. */
export function rangePrefixOp(prefix: string, keysOnly: boolean, limit?: number): IRequestOp {
  const range = { key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: keysOnly };
  return { request_range: limit === undefined ? range : { ...range, limit } };
}

/** Reads the last key starting with `prefix` in key order, with its value. */
export function lastInPrefixOp(prefix: string): IRequestOp {
  return {
    request_range: {
      key: Buffer.from(prefix),
      range_end: prefixEnd(prefix),
      sort_order: 'Descend',
      sort_target: 'Key',
      limit: 1,
    },
  };
}

/** Deletes `key`. */
export function deleteKeyOp(key: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key) } };
}

/** Deletes every key starting with `prefix`. */
export function deletePrefixOp(prefix: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(prefix), range_end: prefixEnd(prefix) } };
}

/** Compares the value of `key` byte-wise; fails when the key is absent. */
export function valueIs(key: string, comparison: Comparison, value: string): ICompare {
  return {
    key: Buffer.from(key),
    target: CompareTarget.Value,
    result: CompareResult[comparison],
    value: Buffer.from(value),
  };
}

/** Compares the version of `key`; an absent key has version 0. */
export function versionIs(key: string, comparison: Comparison, version: number): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Version, result: CompareResult[comparison], version };
}

/** Holds when no key starts with `prefix`. */
export function noKeyUnder(prefix: string): ICompare {
  return {
    key: Buffer.from(prefix),
    range_end: prefixEnd(prefix),
    target: CompareTarget.Version,
    result: CompareResult.Equal,
    version: 0,
  };
}

/** Holds when `key` was last modified at `revision` ('0' for an absent key). */
export function modRevisionIs(key: string, revision: string): ICompare {
  return { key: Buffer.from(key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: revision };
}

/** Holds when `key` was created at `revision` ('0' for an absent key). */
export function createRevisionIs(key: string, revision: string): ICompare {
  return {
    key: Buffer.from(key),
    target: CompareTarget.Create,
    result: CompareResult.Equal,
    create_revision: revision,
  };
}

/** The key-values a range operation of a transaction returned. */
export function rangeKvs(response: IResponseOp | undefined): IKeyValue[] {
  return response?.response_range?.kvs ?? [];
}

/** The single key-value a get operation of a transaction returned, if any. */
export function firstKv(response: IResponseOp | undefined): IKeyValue | undefined {
  return rangeKvs(response)[0];
}
