/**
 * What the fuzz suite runs against: a coordinator child with its own etcd
 * prefix and subject prefix, and jobs whose state changes only when a
 * request changes it (manual triggers only, long timeouts):
 *
 * - `main`: two sources and a sink run by a simulated worker that
 *   acknowledges; one checkpoint committed at the start;
 * - `pending`: a source and a sink run by a silent simulated worker, with
 *   one checkpoint always pending (the target of acknowledgements and
 *   declines);
 * - `session` and `first`: tasks nobody runs, one per concurrent lane plus
 *   one never attached, so that the jobs never start and a fuzzed session
 *   can attach one task, send one message and go without a recovery;
 * - `victim`: a job without worker, for cancels.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import {
  createCoordinatorClient,
  createQueryClient,
  type CoordinatorClient,
  type QueryClient,
} from '../../src/client/index.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import { silentLogger } from '../../src/log/index.js';
import { startSimulatedWorker, type SimulatedWorker } from '../sim/index.js';
import { eventually } from '../helpers/wait.js';
import { STATE_URI_SCHEMES } from './contract.js';
import { CoordinatorProcess } from './coordinator-process.js';
import { RawClient } from './raw-calls.js';

/** The fixture's job ids. */
export const JOBS = {
  main: 'fz-main',
  pending: 'fz-pending',
  session: 'fz-session',
  first: 'fz-first',
  victim: 'fz-victim',
} as const;

/** Worker ids of the simulated workers. */
export const WORKERS = { main: 'fz-main-worker', pending: 'fz-pending-worker' } as const;

/** Tasks of `main`. */
export const MAIN_TASKS = ['src-0', 'src-1', 'sink-0'] as const;
/** Tasks of `pending`. */
export const PENDING_TASKS = ['src-0', 'sink-0'] as const;

/** The task of lane `i` in `session` or `first`; `z` is never attached. */
export function laneTask(job: 'session' | 'first', lane: number | 'z'): string {
  return `${job[0]}-${lane === 'z' ? 'z' : String(lane).padStart(2, '0')}`;
}

/** The coordinator's auth token. */
export const AUTH_TOKEN = 'fuzz-token';

/** Deadline of the fixture's own calls. */
const FIXTURE_CALL_MS = 10_000;

/** What the generators build valid messages from; read after every change. */
export interface FixtureContext {
  mainEpoch: number;
  /** The latest committed checkpoint of `main`. */
  mainLatest: number;
  pendingEpoch: number;
  /** The checkpoint of `pending` that is pending now. */
  pendingCheckpoint: number;
  /** The session token of `pending`'s worker (empty until the coordinator hands them out). */
  pendingToken: string;
  /** The session token of `main`'s worker. */
  mainToken: string;
  sessionEpoch: number;
  firstEpoch: number;
  /** A worker id no session has used yet, for the next fuzzed session. */
  laneWorker: string;
  /** A job id no request has named yet, for the next job submitted. */
  freshJob: string;
  /** The task of `session` the next fuzzed session attaches. */
  sessionTask: string;
  /** The task of `first` the next fuzzed first hello names. */
  firstTask: string;
}

/** Where the fixture's servers are. */
export interface FixtureServers {
  readonly etcdUrl: string;
  readonly natsUrl: string;
}

function spec(jobId: string, tasks: JobSpec['tasks']): JobSpec {
  return {
    jobId,
    tasks,
    policy: { intervalMs: 0, timeoutMs: 3_600_000, tolerableFailures: -1, maxConcurrent: 1, retained: 3 },
  };
}

function laneSpec(job: 'session' | 'first', lanes: number): JobSpec {
  const ids = [...Array.from({ length: lanes }, (_, i) => laneTask(job, i)), laneTask(job, 'z')];
  return spec(
    JOBS[job],
    ids.map((taskId) => ({ taskId })),
  );
}

/** The specs of the fixture's jobs for `lanes` concurrent lanes. */
export function fixtureSpecs(lanes: number): Record<keyof typeof JOBS, JobSpec> {
  return {
    main: spec(JOBS.main, [{ taskId: 'src-0' }, { taskId: 'src-1' }, { taskId: 'sink-0', inputs: ['src-0', 'src-1'] }]),
    pending: spec(JOBS.pending, [{ taskId: 'src-0' }, { taskId: 'sink-0', inputs: ['src-0'] }]),
    session: laneSpec('session', lanes),
    first: laneSpec('first', lanes),
    victim: spec(JOBS.victim, [{ taskId: 'only' }]),
  };
}

/** A coordinator child with the fixture's jobs and workers. */
export class Fixture {
  readonly coordinator: CoordinatorProcess;
  readonly client: CoordinatorClient;
  readonly query: QueryClient;
  readonly raw: RawClient;
  readonly etcd: Etcd3;
  readonly specs: Record<keyof typeof JOBS, JobSpec>;
  readonly lanes: number;
  #workers: SimulatedWorker[] = [];
  #mainWorker: SimulatedWorker | undefined;
  #pendingWorker: SimulatedWorker | undefined;
  #lanes = 0;
  #context: FixtureContext | undefined;

  private constructor(coordinator: CoordinatorProcess, servers: FixtureServers, lanes: number) {
    this.coordinator = coordinator;
    this.lanes = lanes;
    this.specs = fixtureSpecs(lanes);
    const options = { token: AUTH_TOKEN };
    this.client = createCoordinatorClient(coordinator.address, options);
    this.query = createQueryClient(coordinator.address, options);
    this.raw = new RawClient(coordinator.address, AUTH_TOKEN);
    this.etcd = new Etcd3({
      hosts: servers.etcdUrl,
      defaultCallOptions: () => ({ deadline: new Date(Date.now() + FIXTURE_CALL_MS) }),
    });
  }

  /** Starts a coordinator child under fresh prefixes and sets the jobs up. */
  static async start(servers: FixtureServers, lanes: number): Promise<Fixture> {
    const id = randomBytes(4).toString('hex');
    const coordinator = await CoordinatorProcess.start({
      etcdUrl: servers.etcdUrl,
      natsUrl: servers.natsUrl,
      etcdPrefix: `/fuzz-${id}/`,
      subjectPrefix: `fuzz_${id}`,
      authToken: AUTH_TOKEN,
      // The simulated workers' state URIs use the `sim` scheme. Their heartbeats come from this
      // process, which encodes messages of many megabytes: on a loaded machine it may not send one
      // for seconds, and a recovery that starvation caused is not what a case is judged on.
      extraArgs: ['--state-uri-schemes', STATE_URI_SCHEMES.join(','), '--heartbeat-timeout-ms', '30000'],
    });
    const fixture = new Fixture(coordinator, servers, lanes);
    try {
      await fixture.#setUp();
    } catch (err) {
      await fixture.stop();
      throw err;
    }
    return fixture;
  }

  /** The context as last read (`refresh`). */
  get context(): FixtureContext {
    if (this.#context === undefined) throw new Error('the fixture is not set up');
    return this.#context;
  }

  /** The etcd prefix every key of this coordinator starts with. */
  get etcdPrefix(): string {
    return this.coordinator.options.etcdPrefix;
  }

  async #setUp(): Promise<void> {
    for (const s of Object.values(this.specs))
      await this.client.submitJob({ spec: s }, { deadlineMs: FIXTURE_CALL_MS });
    this.#mainWorker = await this.#worker(this.specs.main, WORKERS.main, [...MAIN_TASKS], 'ack');
    this.#pendingWorker = await this.#worker(this.specs.pending, WORKERS.pending, [...PENDING_TASKS], 'silent');
    await this.#running(JOBS.main);
    await this.#running(JOBS.pending);
    const first = await this.client.triggerCheckpoint(
      { jobId: JOBS.main, wait: true },
      { deadlineMs: FIXTURE_CALL_MS },
    );
    if (first.checkpoint?.state !== 'CHECKPOINT_STATE_COMPLETED') {
      throw new Error(`main's first checkpoint did not complete: ${JSON.stringify(first.checkpoint)}`);
    }
    await this.ensurePending();
    await this.refresh();
  }

  async #worker(
    jobSpec: JobSpec,
    workerId: string,
    taskIds: string[],
    behaviour: 'ack' | 'silent',
  ): Promise<SimulatedWorker> {
    const worker = await startSimulatedWorker({
      coordinator: this.coordinator.address,
      token: AUTH_TOKEN,
      nats: [this.coordinator.options.natsUrl],
      subjectPrefix: this.coordinator.options.subjectPrefix,
      jobId: jobSpec.jobId ?? '',
      workerId,
      taskIds,
      spec: jobSpec,
      behaviour,
      logger: silentLogger(),
    });
    this.#workers.push(worker);
    return worker;
  }

  async #running(jobId: string, timeoutMs = FIXTURE_CALL_MS): Promise<void> {
    await eventually(
      async () => (await this.client.getJob({ jobId }, { deadlineMs: 2_000 })).job?.attempt === 'JOB_ATTEMPT_RUNNING',
      { timeoutMs, pollMs: 50, what: `job ${jobId} running` },
    );
  }

  /** Triggers a checkpoint of `pending` unless one is pending already. */
  async ensurePending(): Promise<void> {
    await this.#running(JOBS.pending);
    const job = (await this.client.getJob({ jobId: JOBS.pending }, { deadlineMs: FIXTURE_CALL_MS })).job;
    if (job?.checkpointing === 'JOB_CHECKPOINTING_CHECKPOINTING') return;
    await this.client.triggerCheckpoint({ jobId: JOBS.pending }, { deadlineMs: FIXTURE_CALL_MS });
  }

  /** Reads the epochs, checkpoint ids and tokens the generators need, of `jobs` (default: all). */
  async refresh(jobs: readonly string[] = Object.values(JOBS)): Promise<FixtureContext> {
    const get = async (jobId: string) =>
      jobs.includes(jobId)
        ? ((await this.client.getJob({ jobId }, { deadlineMs: FIXTURE_CALL_MS })).job ?? undefined)
        : undefined;
    const [main, pending, session, first] = await Promise.all(
      [JOBS.main, JOBS.pending, JOBS.session, JOBS.first].map(get),
    );
    const before = this.#context;
    const next: FixtureContext = {
      mainEpoch: main?.epoch ?? before?.mainEpoch ?? 0,
      mainLatest: main?.latestCheckpointId ?? before?.mainLatest ?? 0,
      pendingEpoch: pending?.epoch ?? before?.pendingEpoch ?? 0,
      pendingCheckpoint: before?.pendingCheckpoint ?? 0,
      pendingToken: this.#pendingWorker?.welcome?.sessionToken ?? '',
      mainToken: this.#mainWorker?.welcome?.sessionToken ?? '',
      sessionEpoch: session?.epoch ?? before?.sessionEpoch ?? 0,
      firstEpoch: first?.epoch ?? before?.firstEpoch ?? 0,
      ...this.#lane(),
    };
    if (pending !== undefined) {
      const listed = await this.query.listCheckpoints({ jobId: JOBS.pending }, { deadlineMs: FIXTURE_CALL_MS });
      next.pendingCheckpoint =
        listed.checkpoints.find((c) => c.state === 'CHECKPOINT_STATE_PENDING')?.checkpointId ?? 0;
    }
    this.#context = next;
    return next;
  }

  /** Moves the context to the next lane: fresh worker and job ids, and the next tasks of `session` and `first`. */
  nextLane(): FixtureContext {
    this.#lanes += 1;
    this.#context = { ...this.context, ...this.#lane() };
    return this.#context;
  }

  #lane(): Pick<FixtureContext, 'laneWorker' | 'freshJob' | 'sessionTask' | 'firstTask'> {
    const lane = this.#lanes % this.lanes;
    return {
      laneWorker: `fz-lane-${this.#lanes}`,
      freshJob: `fz-new-${this.#lanes}`,
      sessionTask: laneTask('session', lane),
      firstTask: laneTask('first', lane),
    };
  }

  /**
   * Waits until what requests naming `jobs` set in motion is over: `main`
   * runs with nothing pending, `pending` runs with its checkpoint pending
   * again; then reads the context.
   */
  async settle(jobs: readonly string[] = [JOBS.main, JOBS.pending], timeoutMs = 20_000): Promise<void> {
    if (jobs.includes(JOBS.main)) {
      await this.#running(JOBS.main, timeoutMs);
      await eventually(
        async () =>
          (await this.client.getJob({ jobId: JOBS.main }, { deadlineMs: 2_000 })).job?.checkpointing !==
          'JOB_CHECKPOINTING_CHECKPOINTING',
        { timeoutMs, pollMs: 50, what: 'main without pending checkpoints' },
      );
    }
    if (jobs.includes(JOBS.pending)) await this.ensurePending();
    await this.refresh(jobs);
  }

  /** True when the coordinator process runs and answers a GetJob of `main` in time. */
  async serving(deadlineMs = 3_000): Promise<boolean> {
    if (!this.coordinator.alive) return false;
    try {
      await this.client.getJob({ jobId: JOBS.main }, { deadlineMs });
      return true;
    } catch {
      return false;
    }
  }

  /** Stops the workers, the clients and the coordinator child. */
  async stop(): Promise<void> {
    await Promise.allSettled(
      this.#workers.map((w) => (this.coordinator.alive ? w.close() : Promise.resolve(w.kill()))),
    );
    this.client.close();
    this.query.close();
    this.raw.close();
    this.etcd.close();
    await this.coordinator.stop();
  }
}
