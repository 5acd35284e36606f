/**
 * One figure of `make bench`, as `bench/results/summary.json` lists it, and
 * the shape every scenario module has.
 */
import type { SystemFacts } from './system.js';

/** One measured figure, with the target it is held to when it has one. */
export interface Row {
  /** Stable id, e.g. `floor.etcd_txn.p50` or `checkpoint.latency.n1024.p50`. */
  id: string;
  value: number;
  /** `ms`, `msg/s`, `records/s`, `ratio`, `bytes`, `transactions`, `ms/checkpoint` … */
  unit: string;
  /** The bound the value must meet, in `unit`, or null when the figure is only reported. */
  target: number | null;
  /** value ÷ the floor or the baseline it is compared with, or null. */
  ratio: number | null;
  /** Whether `target` is met; null without a target. */
  met: boolean | null;
  /** How it was measured: sizes, counts, repetitions, what ran where. */
  conditions: string;
}

/** What a scenario is given: the local servers of the run and a log line writer. */
export interface ScenarioContext {
  /** etcd client URLs of a single-member etcd started for the run. */
  etcd: string[];
  /** NATS server URLs (JetStream enabled) started for the run. */
  nats: string[];
  /** A unique prefix for etcd keys and NATS subjects of this scenario. */
  prefix: string;
  /** The server versions and cores, read from the systems, for the rows' conditions. */
  system: SystemFacts;
  /** Process ids of that etcd and NATS server, for CPU accounting. Default: unknown. */
  serverPids?: { etcd: number; nats: number };
  /** Figures measured earlier in the run (the floor), by id. */
  earlier: ReadonlyMap<string, Row>;
  /** A short smoke run (`make bench` with `--quick`): fewer repetitions, smaller sizes. Default false. */
  quick?: boolean;
  /** Progress lines for the console. */
  log(line: string): void;
}

/** A scenario: measures and returns its rows. */
export type Scenario = (ctx: ScenarioContext) => Promise<Row[]>;
