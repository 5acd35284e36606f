/**
 * The behaviours of the conformance worker contract (see README.md): what
 * `CKPT_TASKS` may say about each task, parsed and checked, shared by the
 * TypeScript adapter and the runner that computes what each report must say.
 */

/** A counting source: emits n = 1, 2, 3, ... keyed by `n mod keys`. */
export interface SourceBehaviour extends CommonBehaviour {
  kind: 'source';
  /** Records per second; 0: as fast as it can. */
  rate: number;
  /** The last n it emits; 0: never stops. */
  limit: number;
  /** How many distinct keys (`n mod keys`). */
  keys: number;
}

/** A keyed sum: adds n to keyed state `key`, and forwards the record by key. */
export interface SumBehaviour extends CommonBehaviour {
  kind: 'sum';
}

/** A summing sink: counts and sums what it receives. */
export interface SinkBehaviour extends CommonBehaviour {
  kind: 'sink';
}

/** What every behaviour may add. */
export interface CommonBehaviour {
  /** Declines this checkpoint id instead of snapshotting it (once per process). */
  declineCheckpoint?: number;
  /** Blocks forever at the N-th record handled in the first epoch the process runs the task in. */
  hangAtRecord?: number;
  /** A task with inputs takes this long for each record it processes (a slow reader). */
  processDelayMs?: number;
}

/** Any behaviour. */
export type Behaviour = SourceBehaviour | SumBehaviour | SinkBehaviour;

/** Default records per second of a source. */
export const DEFAULT_RATE = 2000;
/** Default number of keys of a source. */
export const DEFAULT_KEYS = 16;

/** Parses `CKPT_TASKS`; throws an Error naming the task and the field that is wrong. */
export function parseTasks(text: string): Map<string, Behaviour> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`CKPT_TASKS is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error('CKPT_TASKS must be a JSON object of task id -> behaviour');
  }
  const tasks = new Map<string, Behaviour>();
  for (const [taskId, value] of Object.entries(raw as Record<string, unknown>)) {
    tasks.set(taskId, parseBehaviour(taskId, value));
  }
  if (tasks.size === 0) throw new Error('CKPT_TASKS names no task');
  return tasks;
}

function parseBehaviour(taskId: string, value: unknown): Behaviour {
  if (typeof value !== 'object' || value === null) throw new Error(`CKPT_TASKS.${taskId} must be an object`);
  const v = value as Record<string, unknown>;
  const field = (name: string, fallback: number | undefined): number | undefined => {
    const x = v[name];
    if (x === undefined) return fallback;
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
      throw new Error(`CKPT_TASKS.${taskId}.${name} must be a non-negative integer, got ${JSON.stringify(x)}`);
    }
    return x;
  };
  const common: CommonBehaviour = {};
  const decline = field('declineCheckpoint', undefined);
  const hang = field('hangAtRecord', undefined);
  if (decline !== undefined) common.declineCheckpoint = decline;
  if (hang !== undefined) common.hangAtRecord = hang;
  const processDelay = field('processDelayMs', undefined);
  if (processDelay !== undefined && processDelay > 0) common.processDelayMs = processDelay;
  switch (v.kind) {
    case 'source': {
      const keys = field('keys', DEFAULT_KEYS) as number;
      if (keys < 1) throw new Error(`CKPT_TASKS.${taskId}.keys must be at least 1`);
      const rate = field('rate', DEFAULT_RATE) as number;
      const limit = field('limit', 0) as number;
      return { kind: 'source', rate, limit, keys, ...common };
    }
    case 'sum':
      return { kind: 'sum', ...common };
    case 'sink':
      return { kind: 'sink', ...common };
    default:
      throw new Error(`CKPT_TASKS.${taskId}.kind must be "source", "sum" or "sink", got ${JSON.stringify(v.kind)}`);
  }
}

/** One report a worker publishes on `CKPT_REPORT_SUBJECT`. */
export interface Report {
  task: string;
  event: 'restored' | 'committed';
  epoch: number;
  checkpoint: number;
  count: number;
  sum: number;
}

/** Parses one report; undefined when the bytes are not one. */
export function parseReport(text: string): Report | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const ints = ['epoch', 'checkpoint', 'count', 'sum'].every(
    (k) => typeof r[k] === 'number' && Number.isSafeInteger(r[k]) && r[k] >= 0,
  );
  if (typeof r.task !== 'string' || (r.event !== 'restored' && r.event !== 'committed') || !ints) return undefined;
  return raw as Report;
}
