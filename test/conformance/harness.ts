/**
 * One scenario's run: its coordinators, its job, the worker processes it
 * supervises, the reports the workers publish, and what it observes of the
 * job in etcd from outside (the `latest` checkpoint, the epoch, committed
 * manifests). Everything it starts stops in `close()`.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  createCoordinatorClient,
  createQueryClient,
  type CoordinatorClient,
  type QueryClient,
} from '../../src/client/index.js';
import type { CheckpointSummary__Output as CheckpointSummary } from '../../src/gen/ckpt/v1/CheckpointSummary.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { CheckpointPolicy } from '../../src/gen/ckpt/v1/CheckpointPolicy.js';
import type { Manifest__Output as Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { NatsProcess } from '../../src/dev/index.js';
import { createEtcdStore, KeyLayout, type EtcdStore } from '../../src/store/index.js';
import { parseReport, type Behaviour, type Report } from './behaviours.js';
import { awaitLeader, startCoordinators, stopCoordinators, type CoordinatorNode } from './coordinators.js';
import { startDelayProxy, type DelayProxy } from './delay-proxy.js';
import type { GraphTask } from './expected.js';
import { SupervisedWorker } from './supervisor.js';
import { verifyReports } from './verify.js';

/** A scenario failed; the message says what differed. */
export class ScenarioFailure extends Error {
  override readonly name = 'ScenarioFailure';
}

/** What the suite shares between scenarios. */
export interface SuiteContext {
  repo: string;
  etcdUrl: string;
  natsUrl: string;
  /** The NATS server, which a scenario may restart. */
  nats: NatsProcess;
  /** The runner's own NATS connection (direct, never through a proxy). */
  nc: NatsConnection;
  workerCommand: string;
  /** Where this scenario's logs go. */
  logDir: string;
  /** Lines for the runner's progress output. */
  log(line: string): void;
}

/** A job of the suite: its spec and each task's behaviour. */
export interface SuiteJob {
  tasks: Record<string, Behaviour & { inputs?: string[] }>;
  policy: CheckpointPolicy;
}

/** Another job of a scenario (`ScenarioRun.submitOther`), with the reports of its tasks. */
export interface OtherJob {
  jobId: string;
  job: SuiteJob;
  reportSubject: string;
  reports: Report[];
}

/** A savepoint to start a job from. */
export interface SavepointRef {
  jobId: string;
  checkpointId: number;
}

function graphOf(job: SuiteJob): GraphTask[] {
  return Object.entries(job.tasks).map(([taskId, t]) => ({ taskId, inputs: t.inputs ?? [] }));
}

function behavioursOf(job: SuiteJob): Map<string, Behaviour> {
  return new Map(Object.entries(job.tasks).map(([taskId, { inputs: _inputs, ...b }]) => [taskId, b]));
}

function specOf(jobId: string, job: SuiteJob): JobSpec {
  const tasks = graphOf(job).map((t) => ({ taskId: t.taskId, inputs: [...t.inputs] }));
  return { jobId, tasks, policy: { retained: 100, ...job.policy } };
}

/** The run of one scenario. */
export class ScenarioRun {
  readonly jobId: string;
  readonly reportSubject: string;
  readonly reports: Report[] = [];
  /** When each report arrived (ms since the epoch), by its index in `reports`. */
  readonly reportAtMs: number[] = [];
  readonly workers: SupervisedWorker[] = [];
  coordinators: CoordinatorNode[] = [];
  /** Every `latest` value seen, in order. */
  readonly latestSeen: number[] = [];
  /** When each value of `latestSeen` was seen (ms since the epoch). */
  readonly latestSeenAtMs: number[] = [];
  /** Every epoch seen, in order. */
  readonly epochsSeen: number[] = [];
  readonly problems: string[] = [];
  graph: GraphTask[] = [];
  behaviours = new Map<string, Behaviour>();
  unaligned = false;
  #client: CoordinatorClient | undefined;
  #query: QueryClient | undefined;
  readonly #store: EtcdStore;
  readonly #etcd: Etcd3;
  readonly #keys: KeyLayout;
  readonly #manifests = new Map<number, Manifest>();
  readonly #closers: Array<() => Promise<void> | void> = [];
  readonly #stateDir: string;
  readonly #etcdPrefix: string;
  readonly #subjectPrefix: string;
  #subscription: Subscription | undefined;
  #polling = true;
  #poller: Promise<void> = Promise.resolve();

  constructor(
    readonly suite: SuiteContext,
    readonly name: string,
  ) {
    const random = randomBytes(3).toString('hex');
    this.jobId = `${name}-${random}`;
    this.#etcdPrefix = `/conformance/${this.jobId}/`;
    this.#subjectPrefix = `conf_${random}`;
    this.reportSubject = `conformance.reports.${this.jobId}`;
    this.#stateDir = join(suite.logDir, 'state');
    this.#store = createEtcdStore({ hosts: [suite.etcdUrl], prefix: this.#etcdPrefix });
    this.#etcd = new Etcd3({ hosts: suite.etcdUrl });
    this.#keys = new KeyLayout(this.#etcdPrefix);
  }

  /** `<subject prefix>.<job>`: where the job's control and data subjects live. */
  get controlPrefix(): string {
    return `${this.#subjectPrefix}.${this.jobId}`;
  }

  /** The client of every coordinator (it follows the leader). */
  get client(): CoordinatorClient {
    if (this.#client === undefined) throw new Error('no coordinators started');
    return this.#client;
  }

  get query(): QueryClient {
    if (this.#query === undefined) throw new Error('no coordinators started');
    return this.#query;
  }

  /** The latest committed checkpoint seen (0 before any). */
  get latest(): number {
    return this.latestSeen.at(-1) ?? 0;
  }

  /** The job's epoch as last seen in etcd. */
  get epoch(): number {
    return this.epochsSeen.at(-1) ?? 0;
  }

  /** Subscribes to the reports and makes the state directory. */
  async open(): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true });
    this.#subscription = this.suite.nc.subscribe(this.reportSubject, {
      callback: (err, msg) => {
        if (err !== null) return;
        const report = parseReport(msg.string());
        if (report === undefined) this.problems.push(`a report that does not parse: ${msg.string().slice(0, 200)}`);
        else {
          this.reports.push(report);
          this.reportAtMs.push(Date.now());
        }
      },
    });
    await this.suite.nc.flush();
  }

  /** Starts `n` coordinators with `extraArgs` and waits for a leader. */
  async startCoordinators(n: number, extraArgs: readonly string[] = []): Promise<void> {
    this.coordinators = await startCoordinators(
      {
        repo: this.suite.repo,
        etcdUrl: this.suite.etcdUrl,
        natsUrl: this.suite.natsUrl,
        etcdPrefix: this.#etcdPrefix,
        subjectPrefix: this.#subjectPrefix,
        logDir: this.suite.logDir,
        extraArgs,
      },
      n,
    );
    const addresses = this.coordinators.map((c) => c.address);
    this.#client = createCoordinatorClient(addresses);
    this.#query = createQueryClient(addresses);
    await awaitLeader(this.coordinators, this.jobId, 60_000);
  }

  /** The index of the coordinator leading now. */
  leader(timeoutMs = 30_000): Promise<number> {
    return awaitLeader(this.coordinators, this.jobId, timeoutMs);
  }

  /** Submits the job (from a savepoint when given one) and starts observing it. */
  async submit(job: SuiteJob, fromSavepoint?: SavepointRef): Promise<void> {
    this.graph = graphOf(job);
    this.behaviours = behavioursOf(job);
    this.unaligned = job.policy.mode === 'CHECKPOINT_MODE_UNALIGNED';
    const spec = specOf(this.jobId, job);
    await this.#retry(() => this.client.submitJob({ spec, fromSavepoint }), 'SubmitJob');
    this.#poller = this.#poll();
  }

  /**
   * Submits another job of the scenario, `<job id>-<suffix>` (the job a
   * savepoint comes from): its workers report on a subject of their own,
   * and the core check does not read it; `verifyOther` checks its reports.
   */
  async submitOther(suffix: string, job: SuiteJob): Promise<OtherJob> {
    const other: OtherJob = {
      jobId: `${this.jobId}-${suffix}`,
      job,
      reportSubject: `${this.reportSubject}-${suffix}`,
      reports: [],
    };
    const subscription = this.suite.nc.subscribe(other.reportSubject, {
      callback: (err, msg) => {
        if (err !== null) return;
        const report = parseReport(msg.string());
        if (report === undefined) this.problems.push(`a report that does not parse: ${msg.string().slice(0, 200)}`);
        else other.reports.push(report);
      },
    });
    this.#closers.push(() => subscription.unsubscribe());
    await this.suite.nc.flush();
    await this.#retry(() => this.client.submitJob({ spec: specOf(other.jobId, job) }), 'SubmitJob');
    return other;
  }

  /** The core check on the reports of another job: against its own committed manifests. */
  async verifyOther(other: OtherJob): Promise<void> {
    await this.suite.nc.flush();
    const problems = await verifyReports({
      graph: graphOf(other.job),
      behaviours: behavioursOf(other.job),
      unaligned: other.job.policy.mode === 'CHECKPOINT_MODE_UNALIGNED',
      reports: other.reports,
      manifest: (id) => this.#store.readManifest(other.jobId, id),
    });
    if (problems.length > 0) throw new ScenarioFailure(`job ${other.jobId}: ${problems.slice(0, 12).join('\n')}`);
  }

  /**
   * Starts a supervised worker process running `taskIds` (their behaviours
   * as submitted). It reaches the coordinators and NATS directly, or
   * through the proxies given; its snapshots go to a local directory, or
   * with `objectStore` to a JetStream Object Store bucket of the scenario.
   */
  worker(
    label: string,
    taskIds: readonly string[],
    via: {
      coordinators?: string;
      natsUrl?: string;
      objectStore?: boolean;
      env?: Record<string, string>;
      /** Runs tasks of another job of the scenario instead (`submitOther`). */
      other?: OtherJob;
    } = {},
  ): SupervisedWorker {
    const behaviours = via.other === undefined ? this.behaviours : behavioursOf(via.other.job);
    const tasks = Object.fromEntries(taskIds.map((id) => [id, behaviours.get(id)]));
    const jobId = via.other?.jobId ?? this.jobId;
    const worker = new SupervisedWorker({
      label,
      command: this.suite.workerCommand,
      cwd: this.suite.repo,
      logFile: join(this.suite.logDir, `worker-${label}.log`),
      env: {
        CKPT_COORDINATORS: via.coordinators ?? this.coordinators.map((c) => c.address).join(','),
        CKPT_NATS_URL: via.natsUrl ?? this.suite.natsUrl,
        CKPT_JOB: jobId,
        CKPT_TASKS: JSON.stringify(tasks),
        CKPT_STATE: via.objectStore === true ? `nats-obj://${this.#subjectPrefix}` : `file://${this.#stateDir}`,
        CKPT_REPORT_SUBJECT: via.other?.reportSubject ?? this.reportSubject,
        CKPT_WORKER_ID: `${label}-${jobId}`,
        ...via.env,
      },
    });
    worker.start();
    this.workers.push(worker);
    return worker;
  }

  /** A delay proxy to the leading coordinator's gRPC port. */
  async grpcProxy(): Promise<DelayProxy> {
    const leader = this.coordinators[await this.leader()] as CoordinatorNode;
    return this.#proxy(leader.address);
  }

  /** A delay proxy to NATS. */
  natsProxy(): Promise<DelayProxy> {
    return this.#proxy(new URL(this.suite.natsUrl).host);
  }

  async #proxy(target: string): Promise<DelayProxy> {
    const proxy = await startDelayProxy(target);
    this.#closers.push(() => proxy.close());
    return proxy;
  }

  /** Waits until `check` holds (polled every 100 ms); fails the scenario naming `what` after `timeoutMs`. */
  async waitFor(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) {
        throw new ScenarioFailure(`timed out after ${timeoutMs} ms waiting for ${what} (${this.describe()})`);
      }
      await delay(100);
    }
  }

  /** Waits until `count` more checkpoints committed than now. */
  async waitCommits(count: number, timeoutMs = 20_000): Promise<number> {
    const target = this.latest + 1;
    let seen = 0;
    const from = this.latestSeen.length;
    await this.waitFor(`${count} more committed checkpoints`, timeoutMs, () => {
      seen = new Set(this.latestSeen.slice(from).filter((l) => l >= target)).size;
      return seen >= count;
    });
    return this.latest;
  }

  /** Waits until the job's epoch in etcd is above `epoch`; returns the new one. */
  async waitEpochAbove(epoch: number, timeoutMs = 20_000): Promise<number> {
    await this.waitFor(`an epoch above ${epoch}`, timeoutMs, () => this.epoch > epoch);
    return this.epoch;
  }

  /** Waits until every stateful task reported `restored` in `epoch`; returns those reports. */
  async waitRestored(epoch: number, timeoutMs = 20_000): Promise<Report[]> {
    const all = (): Report[] => this.reports.filter((r) => r.event === 'restored' && r.epoch === epoch);
    await this.waitFor(`every task's restored report in epoch ${epoch}`, timeoutMs, () => {
      const tasks = new Set(all().map((r) => r.task));
      return this.graph.every((t) => tasks.has(t.taskId));
    });
    return all();
  }

  /**
   * Waits until every stateful task reported `restored` in the job's
   * current epoch, which may move on meanwhile (a fault can cost more than
   * one recovery); returns the epoch and those reports.
   */
  async waitRestoredCurrent(timeoutMs = 30_000): Promise<{ epoch: number; reports: Report[] }> {
    const of = (epoch: number): Report[] => this.reports.filter((r) => r.event === 'restored' && r.epoch === epoch);
    await this.waitFor("every task's restored report in the current epoch", timeoutMs, () => {
      const tasks = new Set(of(this.epoch).map((r) => r.task));
      return this.graph.every((t) => tasks.has(t.taskId));
    });
    return { epoch: this.epoch, reports: of(this.epoch) };
  }

  /** The job's checkpoint history as the leader keeps it (recent ones, aborted with their reasons). */
  async history(): Promise<CheckpointSummary[]> {
    const response = await this.#retry(
      () => this.query.getCheckpointStatistics({ jobId: this.jobId }),
      'GetCheckpointStatistics',
    );
    return response.statistics?.history ?? [];
  }

  /** The manifest of checkpoint `id`, kept once read. */
  async manifest(id: number): Promise<Manifest | undefined> {
    const cached = this.#manifests.get(id);
    if (cached !== undefined) return cached;
    const manifest = await this.#store.readManifest(this.jobId, id);
    if (manifest !== undefined) this.#manifests.set(id, manifest);
    return manifest;
  }

  /**
   * The core check: every report against the committed manifests, `latest`
   * never going back, and what the scenario noted. Throws a
   * `ScenarioFailure` listing every problem.
   */
  async verify(): Promise<void> {
    await this.suite.nc.flush();
    await delay(300);
    const problems = [
      ...this.problems,
      ...(await verifyReports({
        graph: this.graph,
        behaviours: this.behaviours,
        unaligned: this.unaligned,
        reports: this.reports,
        manifest: (id) => this.manifest(id),
      })),
    ];
    if (problems.length > 0) throw new ScenarioFailure(problems.slice(0, 12).join('\n'));
  }

  /** A short line of what was observed, for messages. */
  describe(): string {
    const committed = this.reports.filter((r) => r.event === 'committed').length;
    const restored = this.reports.filter((r) => r.event === 'restored').length;
    const exits = this.workers.map((w) => `${w.spec.label}: ${w.starts} starts`).join(', ');
    return `latest ${this.latest}, epoch ${this.epoch}, ${committed} committed and ${restored} restored reports; ${exits}`;
  }

  /** Cancels the job, stops the workers, the coordinators and the proxies. */
  async close(): Promise<void> {
    this.#polling = false;
    await this.#client?.cancelJob({ jobId: this.jobId }, { deadlineMs: 3000 }).catch(() => undefined);
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.#poller;
    this.#subscription?.unsubscribe();
    this.#client?.close();
    this.#query?.close();
    await stopCoordinators(this.coordinators);
    for (const close of this.#closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    await this.#store.close();
    this.#etcd.close();
    await rm(this.#stateDir, { recursive: true, force: true });
  }

  /** Follows `latest` and the epoch in etcd, reads each new manifest, and notes `latest` going back. */
  async #poll(): Promise<void> {
    while (this.#polling) {
      try {
        const [latestText, epochText] = await Promise.all([
          this.#etcd.get(this.#keys.latest(this.jobId)).string(),
          this.#etcd.get(this.#keys.epoch(this.jobId)).string(),
        ]);
        const latest = latestText === null ? 0 : Number(latestText);
        const epoch = epochText === null ? 0 : Number(epochText);
        if (latest < this.latest) this.problems.push(`latest went back from ${this.latest} to ${latest}`);
        if (epoch < this.epoch) this.problems.push(`the epoch went back from ${this.epoch} to ${epoch}`);
        if (latest !== this.latest) {
          const previous = this.latest;
          this.latestSeen.push(latest);
          this.latestSeenAtMs.push(Date.now());
          // Read every checkpoint committed since the last poll now, before retention may drop it.
          for (let id = Math.max(previous + 1, latest - 20); id <= latest; id++) await this.manifest(id);
        }
        if (epoch !== this.epoch) this.epochsSeen.push(epoch);
      } catch {
        // etcd is busy or restarting: the next round reads again.
      }
      await delay(100);
    }
  }

  async #retry<T>(call: () => Promise<T>, what: string, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        if (Date.now() > deadline) throw new ScenarioFailure(`${what} failed: ${(err as Error).message}`);
        await delay(250);
      }
    }
  }

  /** Calls `call` until it succeeds, for up to 20 s (a coordinator taking over answers UNAVAILABLE). */
  retry<T>(call: () => Promise<T>, what: string): Promise<T> {
    return this.#retry(call, what);
  }
}
