/**
 * A simulated worker for tests and benchmarks: scripted task behaviours on
 * the worker protocol layer (`src/worker-protocol`) the SDK runs on.
 */
export { startSimulatedWorker, SimulatedWorker } from './simulated-worker.js';
export type { SimWorkerState } from './simulated-worker.js';
export {
  DEFAULT_ACK_BATCH_MS,
  DEFAULT_ACK_DEADLINE_MS,
  DEFAULT_ACK_RETRY_TIMEOUT_MS,
  DEFAULT_ATTACH_TIMEOUT_MS,
  DEFAULT_SIM_STATE_BYTES,
  resolveSimOptions,
} from './options.js';
export type { BehaviourHook, HookResult, SimulatedWorkerOptions, SnapshotContext, TaskBehaviour } from './options.js';
export type { CallEvent, SimEventMap } from './events.js';
export { simulatedInput, simulatedSnapshot, simulatedUri, SIM_RECORDS_PER_CHECKPOINT } from './snapshot.js';
export type { SimulatedSnapshotInput } from './snapshot.js';
export { DEFAULT_WAIT_MS } from './wait.js';
export type { WaitOptions } from './wait.js';
export { workerTopology } from './topology.js';
export type { WorkerTopology } from './topology.js';
