/**
 * How the store's operations talk to etcd: every call is checked against
 * the request limits before it is sent, its errors are translated, and the
 * store's observer hears of it (`request` below, the one place that sends).
 */
import { performance } from 'node:perf_hooks';
import type { IKeyValue, ITxnRequest, ITxnResponse, KVClient } from 'etcd3';
import type { Logger } from '../log/index.js';
import type { KeyLayout } from './keys.js';
import type { EtcdRequestKind, ResolvedEtcdStoreOptions } from './options.js';
import { prefixEnd } from './etcd-ops.js';
import { assertPutFits, assertTxnFits } from './request-limits.js';
import { callEtcd, type EtcdCallContext } from './translate-error.js';

/** Keys returned per page when listing a prefix. */
export const LIST_PAGE_SIZE = 1_000;

/** What every store operation needs. */
export interface StoreContext {
  readonly kv: KVClient;
  readonly keys: KeyLayout;
  readonly options: ResolvedEtcdStoreOptions;
  readonly logger: Logger;
}

/** Sends a transaction after checking its size and operation count. */
export async function sendTxn(
  ctx: StoreContext,
  request: ITxnRequest,
  context: EtcdCallContext,
): Promise<ITxnResponse> {
  assertTxnFits(request, ctx.options, context);
  return send(ctx, 'txn', context, () => ctx.kv.txn(request));
}

/** Puts one value after checking its size; returns the revision of the put. */
export async function putValue(
  ctx: StoreContext,
  key: string,
  value: Uint8Array,
  context: EtcdCallContext,
): Promise<string> {
  assertPutFits(key, value, ctx.options, context);
  const response = await send(ctx, 'put', context, () =>
    ctx.kv.put({ key: Buffer.from(key), value: Buffer.from(value) }),
  );
  return response.header.revision;
}

/** A key-value read at a revision (undefined when absent), with that revision. */
export interface ReadResult {
  kv: IKeyValue | undefined;
  revision: string;
}

/** Reads one key, at `revision` if given (else the current revision). */
export async function getValue(
  ctx: StoreContext,
  key: string,
  context: EtcdCallContext,
  revision?: string,
): Promise<ReadResult> {
  const request = { key: Buffer.from(key), ...(revision === undefined ? {} : { revision }) };
  const response = await send(ctx, 'get', context, () => ctx.kv.range(request));
  return { kv: response.kvs[0], revision: response.header.revision };
}

/** Keys (with their revisions but without values) under a prefix, read at one revision. */
export interface KeyListing {
  kvs: IKeyValue[];
  revision: string;
}

/**
 * Lists the keys starting with `prefix` without their values, page by page,
 * every page read at the revision of the first, so the listing is one
 * consistent snapshot. With `maxKeys`, stops once it has that many.
 */
export async function listKeys(
  ctx: StoreContext,
  prefix: string,
  context: EtcdCallContext,
  maxKeys = Number.POSITIVE_INFINITY,
): Promise<KeyListing> {
  const end = prefixEnd(prefix);
  const kvs: IKeyValue[] = [];
  let start = Buffer.from(prefix);
  let revision: string | undefined;
  for (;;) {
    const request = {
      key: start,
      range_end: end,
      keys_only: true,
      // Never 0, which etcd reads as no limit.
      limit: Math.max(1, Math.min(LIST_PAGE_SIZE, maxKeys - kvs.length)),
      ...(revision === undefined ? {} : { revision }),
    };
    const response = await send(ctx, 'range', context, () => ctx.kv.range(request));
    revision ??= response.header.revision;
    kvs.push(...response.kvs);
    const last = response.kvs.at(-1);
    if (!response.more || last === undefined || kvs.length >= maxKeys) return { kvs, revision };
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

/** Sends one request to etcd: its errors translated, its duration and outcome told to the observer. */
async function send<T>(
  ctx: StoreContext,
  kind: EtcdRequestKind,
  context: EtcdCallContext,
  call: () => Promise<T>,
): Promise<T> {
  const observer = ctx.options.observer;
  if (observer === undefined) return callEtcd(context, call);
  const startedMs = performance.now();
  let failed = true;
  try {
    const response = await callEtcd(context, call);
    failed = false;
    return response;
  } finally {
    observer.request(kind, performance.now() - startedMs, failed);
  }
}
