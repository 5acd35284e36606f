/**
 * Floor(N): the least time a checkpoint of N tasks can take on this
 * machine, from the bare figures of the floor scenario. One NATS round
 * trip (the trigger out, the first answer back), one etcd transaction (the
 * commit), and N messages through one gRPC stream (the acknowledgements).
 */
import type { Row } from './row.js';

/** Ids of the floor rows Floor(N) is built from. */
export const FLOOR_ROW_IDS = {
  natsRoundTrip: 'floor.nats_rtt.p50',
  etcdTxn: 'floor.etcd_txn.p50',
  streamRate: 'floor.grpc_stream.rate',
} as const;

/** The bound on checkpoint latency p50 ÷ Floor(N): 1.5 up to 1024 tasks, 2 above. */
export function targetFactor(tasks: number): number {
  return tasks <= 1024 ? 1.5 : 2;
}

/** Floor(N) and the figures it is made of. */
export interface FloorModel {
  natsRoundTripMs: number;
  etcdTxnMs: number;
  /** Messages per second through one bare gRPC stream. */
  streamRate: number;
  /** Floor(N) in ms. */
  floorMs(tasks: number): number;
  /** The formula with its figures, for the conditions of a row. */
  readonly formula: string;
}

/** Builds Floor(N) from the floor rows in `earlier`; throws naming a missing row. */
export function floorModel(earlier: ReadonlyMap<string, Row>): FloorModel {
  const value = (id: string): number => {
    const row = earlier.get(id);
    if (row === undefined || !Number.isFinite(row.value) || row.value <= 0) {
      throw new Error(`Floor(N) needs the row ${id}; run the floor scenario first`);
    }
    return row.value;
  };
  const natsRoundTripMs = value(FLOOR_ROW_IDS.natsRoundTrip);
  const etcdTxnMs = value(FLOOR_ROW_IDS.etcdTxn);
  const streamRate = value(FLOOR_ROW_IDS.streamRate);
  return {
    natsRoundTripMs,
    etcdTxnMs,
    streamRate,
    floorMs: (tasks) => natsRoundTripMs + etcdTxnMs + (tasks / streamRate) * 1000,
    formula:
      `Floor(N) = NATS round trip ${natsRoundTripMs} ms + etcd txn ${etcdTxnMs} ms + ` +
      `N / ${Math.round(streamRate)} msg/s`,
  };
}
