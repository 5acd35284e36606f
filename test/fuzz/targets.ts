/**
 * The targets of the fuzz suite: every RPC of coordinator.proto and
 * query.proto, and every message type of an Attach session, each with a
 * valid request against the fixture (symbolic: epochs, checkpoint ids and
 * tokens are read when the message is sent) and what to generate from it.
 */
import fc from 'fast-check';
import { CANCEL_POOL, JOB_POOL, messageArbitrary, mutationSites } from './arbitraries.js';
import type { CaseSource } from './cases.js';
import type { AttachMode } from './contract.js';
import { JOBS, WORKERS } from './fixture.js';
import type { ContextRef } from './values.js';
import { METHODS, type MethodInfo, type Message } from './wire.js';

/** A target: what is called, and what it is called with. */
export interface Target extends CaseSource {
  /** `SubmitJob`, or `Attach.hello` for a message type of the session. */
  readonly name: string;
  readonly method: MethodInfo;
  /** Attach targets: the body field the target fuzzes. */
  readonly body?: AttachBody;
}

/** The message types of an Attach session. */
export const ATTACH_BODIES = ['hello', 'heartbeat', 'ready', 'failure', 'acknowledge', 'decline'] as const;
/** A message type of an Attach session. */
export type AttachBody = (typeof ATTACH_BODIES)[number];

const ATTACH_TYPES: Record<AttachBody, string> = {
  hello: 'WorkerHello',
  heartbeat: 'Heartbeat',
  ready: 'TasksReady',
  failure: 'TaskFailure',
  acknowledge: 'SessionAcknowledge',
  decline: 'SessionDecline',
};

/** Every mode, for the Attach targets. */
export const ATTACH_MODES: readonly AttachMode[] = ['first', 'session', 'standby'];

function ref(key: ContextRef['$ctx']): ContextRef {
  return { $ctx: key, delta: 0 };
}

const HEX64 = 'ab'.repeat(32);

/** A snapshot of `taskId` as the simulated worker would acknowledge it. */
function snapshot(jobId: string, taskId: string | ContextRef): Message {
  return {
    taskId: taskId as unknown as string,
    state: {
      uri: `sim://${jobId}/task/1`,
      sizeBytes: 1024n,
      checksum: `sha256:${HEX64}`,
      shared: [],
      compression: 2,
      rawSizeBytes: 4096n,
    },
    positions: [{ input: 'stream-src-0', offset: 100n }],
    metrics: {
      alignmentMs: 0n,
      syncMs: 1n,
      asyncMs: 2n,
      stateSizeBytes: 1024n,
      persistedBytes: 1024n,
      inFlightBytes: 0n,
      processedRecords: 100n,
    },
  };
}

/** Job graphs of many tasks: one source read by n tasks, and one task reading n sources. */
const bigGraphs = fc
  .tuple(fc.constantFrom(1_000, 20_000, 100_001), fc.boolean(), fc.stringMatching(/^fz-big-[a-z0-9]{1,6}$/))
  .map(([count, fanOut, jobId]) => ({
    spec: {
      jobId,
      tasks: fanOut
        ? [{ taskId: 'src' }, { $repeat: { taskId: 'r-{i}', inputs: ['src'] }, count }]
        : [
            { $repeat: { taskId: 's-{i}' }, count },
            { taskId: 'sink', inputs: [{ $repeat: 's-{i}', count }] },
          ],
    },
  }));

const POLICY: Message = {
  intervalMs: 0n,
  minPauseMs: 0n,
  maxConcurrent: 1,
  timeoutMs: 600_000n,
  tolerableFailures: 0,
  retained: 1,
  mode: 1,
  fullEvery: 0,
  snapshotTimeoutMs: 0n,
  taskStallTimeoutMs: 60_000n,
  compression: 2,
};

/** The valid request of each RPC, and the job ids its generators pick from. */
const RPC_TEMPLATES: Record<string, { template: Message; jobPool?: readonly string[] }> = {
  SubmitJob: {
    template: {
      spec: {
        jobId: ref('freshJob'),
        tasks: [
          { taskId: 'a', inputs: [], labels: { op: 'read' } },
          { taskId: 'b', inputs: ['a'] },
        ],
        policy: POLICY,
        labels: { team: 'fuzz' },
      },
    } as unknown as Message,
    jobPool: [...JOB_POOL, 'fz-new-1'],
  },
  GetJob: { template: { jobId: JOBS.main } },
  CancelJob: { template: { jobId: JOBS.victim }, jobPool: CANCEL_POOL },
  AcknowledgeCheckpoint: {
    template: {
      jobId: JOBS.pending,
      epoch: ref('pendingEpoch'),
      checkpointId: ref('pendingCheckpoint'),
      workerId: WORKERS.pending,
      snapshots: [snapshot(JOBS.pending, 'src-0')],
      sessionToken: ref('pendingToken'),
    } as unknown as Message,
  },
  DeclineCheckpoint: {
    template: {
      jobId: JOBS.pending,
      epoch: ref('pendingEpoch'),
      checkpointId: ref('pendingCheckpoint'),
      workerId: WORKERS.pending,
      declines: [{ taskId: 'sink-0', message: 'disk full' }],
      sessionToken: ref('pendingToken'),
    } as unknown as Message,
  },
  TriggerCheckpoint: { template: { jobId: JOBS.main, snapshotType: 0, wait: false } },
  RestoreJob: { template: { jobId: JOBS.main, checkpointId: ref('mainLatest') } as unknown as Message },
  ListJobs: { template: { pageSize: 2, pageToken: '' } },
  ListCheckpoints: { template: { jobId: JOBS.main, pageSize: 10, pageToken: '' } },
  GetCheckpoint: { template: { jobId: JOBS.main, checkpointId: ref('mainLatest') } as unknown as Message },
  WatchCheckpoints: { template: { jobId: JOBS.main } },
  GetCheckpointStatistics: { template: { jobId: JOBS.main } },
};

/** The RPC targets, in the order of the contract. */
export function rpcTargets(): Target[] {
  return Object.entries(RPC_TEMPLATES).map(([name, { template, jobPool }]) => {
    const method = METHODS[name] as MethodInfo;
    const gen = { jobPool: jobPool ?? JOB_POOL, short: false };
    const generic = messageArbitrary(method.requestType, 0, gen);
    return {
      name,
      method,
      requestType: method.requestType,
      template,
      structured:
        name === 'SubmitJob'
          ? fc.oneof({ arbitrary: generic, weight: 99 }, { arbitrary: bigGraphs, weight: 1 })
          : generic,
      sites: mutationSites(method.requestType, template, gen),
    };
  });
}

/** The valid body of each Attach message type, for a session of `session` (or a hello naming a task of `first`). */
const ATTACH_TEMPLATES: Record<AttachBody, Message> = {
  hello: {
    workerId: ref('laneWorker'),
    jobId: JOBS.first,
    taskIds: [ref('firstTask')],
    labels: { sdk: 'fuzz' },
    epoch: 0n,
    standby: false,
  } as unknown as Message,
  heartbeat: {
    sentAtMs: 1n,
    tasks: [{ taskId: ref('sessionTask'), busyMs: 0n, snapshotMs: 0n, snapshotCheckpointId: 0n }],
  } as unknown as Message,
  ready: { epoch: ref('sessionEpoch'), taskIds: [ref('sessionTask')] } as unknown as Message,
  failure: { taskId: ref('sessionTask'), epoch: ref('sessionEpoch'), message: 'boom' } as unknown as Message,
  acknowledge: {
    requestId: 7n,
    epoch: ref('sessionEpoch'),
    checkpointId: 1n,
    snapshots: [snapshot(JOBS.session, ref('sessionTask'))],
  } as unknown as Message,
  decline: {
    requestId: 8n,
    epoch: ref('sessionEpoch'),
    checkpointId: 1n,
    declines: [{ taskId: ref('sessionTask'), message: 'no space' }],
  } as unknown as Message,
};

/** The Attach targets, one per message type, each spread over the three modes. */
export function attachTargets(): Target[] {
  const method = METHODS.Attach as MethodInfo;
  return ATTACH_BODIES.map((body) => {
    const template = { [body]: ATTACH_TEMPLATES[body] } as Message;
    const inner = messageArbitrary(ATTACH_TYPES[body]).map((m) => ({ [body]: m }));
    return {
      name: `Attach.${body}`,
      method,
      body,
      requestType: 'AttachRequest',
      template,
      structured: fc.oneof(
        { arbitrary: inner, weight: 9 },
        { arbitrary: messageArbitrary('AttachRequest'), weight: 1 },
      ),
      sites: mutationSites('AttachRequest', template),
      modes: ATTACH_MODES,
    };
  });
}

/** RPCs that change nothing even when they succeed. */
export const READ_ONLY_TARGETS: ReadonlySet<string> = new Set([
  'GetJob',
  'ListJobs',
  'ListCheckpoints',
  'GetCheckpoint',
  'WatchCheckpoints',
  'GetCheckpointStatistics',
]);

/**
 * The targets of each fuzz test file, balanced so that the files take
 * about the same time (ava runs two at once).
 */
const GROUPS = {
  'rpc-jobs': ['SubmitJob', 'CancelJob', 'TriggerCheckpoint', 'RestoreJob'],
  'rpc-acks': ['AcknowledgeCheckpoint', 'DeclineCheckpoint'],
  'rpc-queries': [
    'GetJob',
    'ListJobs',
    'ListCheckpoints',
    'GetCheckpoint',
    'WatchCheckpoints',
    'GetCheckpointStatistics',
  ],
  'attach-hello': ['Attach.hello', 'Attach.heartbeat', 'Attach.ready'],
  'attach-reports': ['Attach.failure', 'Attach.acknowledge', 'Attach.decline'],
} as const;

/** The targets of one test file; throws unless the groups hold every target exactly once. */
export function targetGroup(group: keyof typeof GROUPS): Target[] {
  const all = [...rpcTargets(), ...attachTargets()];
  const grouped: string[] = Object.values(GROUPS).flat();
  const names = all.map((t) => t.name);
  if (grouped.length !== names.length || !names.every((n) => grouped.includes(n))) {
    throw new Error(`the fuzz groups must name every target once: ${names.join(', ')}`);
  }
  const mine: readonly string[] = GROUPS[group];
  return all.filter((t) => mine.includes(t.name));
}
