/**
 * A conformance scenario: a named run of the job against real
 * coordinators, etcd and NATS that passes or fails with a message.
 */
import type { ScenarioRun } from './harness.js';

/** One scenario. */
export interface Scenario {
  /** Its name in the report table and the log directory. */
  name: string;
  /** One sentence: what it does and what passes. */
  summary: string;
  /** Longest run before it fails. Default `DEFAULT_SCENARIO_TIMEOUT_MS`. */
  timeoutMs?: number;
  /** Does the scenario; throws a `ScenarioFailure` saying what differed. The core check runs after it. */
  run(s: ScenarioRun): Promise<void>;
}

/** Default longest run of one scenario. */
export const DEFAULT_SCENARIO_TIMEOUT_MS = 90_000;
