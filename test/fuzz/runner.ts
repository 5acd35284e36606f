/**
 * Runs one target: fast-check generates `n` cases, each is sent to the
 * coordinator child and must hold every property:
 *
 * 1. it ends with a status or an answer within the deadline;
 * 2. a refusal carries a known reason with its status code (never UNKNOWN
 *    or INTERNAL), and the contract's invalid input is refused;
 * 3. the coordinator process is still there and its stderr shows no
 *    uncaught exception; every few cases it answers a GetJob in time;
 * 4. etcd is unchanged after a refusal, and after an accepted request only
 *    the keys of the jobs it names changed.
 *
 * A failed case is shrunk by fast-check, each try on a freshly built
 * fixture; shrinking stops after `shrinkMs`.
 */
import { setTimeout as delay } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { executeAttach } from './attach-exec.js';
import { executeCall, type Executed } from './call-exec.js';
import { caseArbitrary, describeCase, type FuzzCase } from './cases.js';
import { changedKeys, etcdNow, jobKeys, unexplained, type EtcdSnapshot } from './etcd-state.js';
import { JOBS, type Fixture } from './fixture.js';
import type { Message } from './wire.js';
import type { FuzzEnv } from './fuzz-env.js';
import { readStderr } from './stderr-check.js';
import { Survey } from './survey.js';
import { Tally } from './tally.js';
import { READ_ONLY_TARGETS, type Target } from './targets.js';

/** How long a child whose connection broke gets to exit, so that its crash is seen. */
const EXIT_GRACE_MS = 1_000;

/** The result of one target's run. */
export interface TargetRun {
  tally: Tally;
  /** fast-check's report of the first failure, shrunk; undefined when every case held. */
  failure: string | undefined;
}

/** Runs `target` with `env.options.n` cases. */
export async function fuzzTarget(env: FuzzEnv, target: Target): Promise<TargetRun> {
  const tally = new Tally(target.name);
  const started = Date.now();
  const survey = env.options.survey ? new Survey() : undefined;
  let failedAt: number | undefined;
  let count = 0;
  const property = fc.asyncProperty(caseArbitrary(target), async (c) => {
    // Past the shrinking budget every try passes, so fast-check reports the smallest failure found so far.
    if (failedAt !== undefined && Date.now() - failedAt > env.options.shrinkMs) return;
    count += 1;
    const problems = await checkCase(env, target, c, failedAt === undefined ? tally : undefined, count);
    if (problems.length === 0) return;
    // After a crash, a stall or an unexplained change the fixture is built again; input that
    // was accepted although invalid changed nothing the checks did not allow.
    if (!problems.every((p) => /^(case|decoded|accepted although) /.test(p))) env.markDirty();
    if (survey !== undefined) {
      survey.add(problems);
      return;
    }
    failedAt ??= Date.now();
    throw new Error(problems.join('\n'));
  });
  const details = await fc.check(property, {
    numRuns: env.options.n,
    ...(env.options.seed === undefined ? {} : { seed: env.options.seed }),
  });
  tally.ms = Date.now() - started;
  if (survey !== undefined && !survey.empty) return { tally, failure: survey.report() };
  return { tally, failure: details.failed ? report(details) : undefined };
}

/** fast-check's counterexample, shrunk, with what it broke and how to run it again. */
function report(details: fc.RunDetails<[FuzzCase]>): string {
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return [
    `Property failed after ${details.numRuns} tests, shrunk ${details.numShrinks} time(s)`,
    `Counterexample: ${details.counterexample ? describeCase(details.counterexample[0]) : '(none)'}`,
    `Replay: CKPT_FUZZ_SEED=${details.seed} (path ${details.counterexamplePath ?? '-'})`,
    error,
  ].join('\n');
}

/**
 * Sends one case and returns the properties it broke (empty when all held);
 * counts it in `tally`, and probes the coordinator with a GetJob when
 * `count` is a multiple of the probe interval.
 */
export async function checkCase(
  env: FuzzEnv,
  target: Target,
  c: FuzzCase,
  tally?: Tally,
  count = env.options.probeEvery,
): Promise<string[]> {
  const fx = await env.fixture();
  const before = await env.baseline(fx);
  const mark = fx.coordinator.lineCount;
  const sent = Date.now();
  let executed: Executed;
  try {
    executed = await send(fx, target, c, env.options.deadlineMs);
  } catch (err) {
    return [`case ${describeCase(c)}`, `the exchange failed: ${String(err)}`, ...(await processProblems(fx, mark))];
  }
  const checked = Date.now();
  const problems = [...executed.verdict.problems, ...(await afterCase(env, fx, target, executed, before, mark, tally))];
  if (fx.coordinator.alive && count % env.options.probeEvery === 0 && !(await fx.serving())) {
    problems.push('the coordinator stopped answering GetJob in time');
  }
  if (tally !== undefined) {
    tally.add(c, executed.verdict);
    tally.sendMs += checked - sent;
    tally.checkMs += Date.now() - checked;
  }
  if (problems.length === 0) return [];
  return [`case ${describeCase(c)}`, `decoded ${summarize(executed)}`, ...problems];
}

function send(fx: Fixture, target: Target, c: FuzzCase, deadlineMs: number): Promise<Executed> {
  return target.method.kind === 'bidi'
    ? executeAttach(fx, target, c, deadlineMs)
    : executeCall(fx, target, c, deadlineMs);
}

/** The process and etcd after a case. */
async function afterCase(
  env: FuzzEnv,
  fx: Fixture,
  target: Target,
  executed: Executed,
  before: EtcdSnapshot,
  mark: number,
  tally: Tally | undefined,
): Promise<string[]> {
  const outcome = executed.outcome;
  // A broken connection may be a crash: give the child a moment to exit, so that it is seen.
  if (outcome.kind === 'status' && outcome.reason === undefined && outcome.code !== grpc.status.OK) {
    await Promise.race([fx.coordinator.exited, delay(EXIT_GRACE_MS)]);
  }
  const problems = await processProblems(fx, mark, tally);
  // After a stall the request's effect is unknown: etcd is not judged.
  if (fx.coordinator.alive && outcome.kind !== 'hang') {
    problems.push(...(await etcdProblems(env, fx, target, executed, before)));
  }
  return problems;
}

/** A crash: the child is gone, or its stderr shows an uncaught exception. */
async function processProblems(fx: Fixture, mark: number, tally?: Tally): Promise<string[]> {
  const problems: string[] = [];
  if (!fx.coordinator.alive) {
    const exit = await fx.coordinator.exited;
    problems.push(
      `the coordinator exited (code ${exit.code}, signal ${exit.signal}); stderr:\n${fx.coordinator.stderr(15)}`,
    );
  }
  const found = readStderr(fx.coordinator.linesSince(mark));
  if (found.crashes.length > 0) {
    const headline =
      found.crashes.find((line) => /^\w*Error: /.test(line)) ??
      found.crashes.find((line) => /uncaught|unhandled/i.test(line)) ??
      found.crashes[0];
    problems.push(`stderr shows an uncaught exception: ${headline}\n${found.crashes.slice(0, 12).join('\n')}`);
  }
  tally?.addErrorLogs(found.errors);
  return problems;
}

/**
 * etcd after the case: unchanged after a refusal, changed only under the
 * named jobs after an accepted request. A task failure a session reported
 * makes its job recover, after a backoff that may outlast the case: until
 * that job's epoch has changed, its keys may change under any later case.
 */
async function etcdProblems(
  env: FuzzEnv,
  fx: Fixture,
  target: Target,
  executed: Executed,
  before: EtcdSnapshot,
): Promise<string[]> {
  const accepted = executed.verdict.accepted === true && !READ_ONLY_TARGETS.has(target.name);
  const sessionEpoch = BigInt(fx.context.sessionEpoch);
  let after: EtcdSnapshot;
  try {
    if (accepted) await fx.settle(executed.touches);
    after = await etcdNow(fx.etcd, fx.etcdPrefix, before);
  } catch (err) {
    return [`the fixture did not settle after the case: ${String(err)}`];
  }
  env.setBaseline(after);
  const changed = changedKeys(before, after);
  const recovering = [...env.recovering];
  for (const jobId of recovering) {
    if (changed.includes(`${jobKeys(fx.etcdPrefix, jobId)}epoch`)) env.recovering.delete(jobId);
  }
  const failure = executed.decoded?.failure as Message | null | undefined;
  const epochKey = `${jobKeys(fx.etcdPrefix, JOBS.session)}epoch`;
  // A failure taken in the session's epoch, or in a newer one the coordinator has begun and the
  // context has not read yet, makes the job recover, possibly after this case.
  const failed = typeof failure?.epoch === 'bigint' && failure.epoch >= sessionEpoch;
  if (accepted && failed && !changed.includes(epochKey)) env.recovering.add(JOBS.session);
  const allowed = [...recovering, ...(accepted ? executed.touches : [])].map((jobId) => jobKeys(fx.etcdPrefix, jobId));
  // A job's statistics record is the leader's to write on its own schedule (aborts and recoveries
  // in batches, seconds later), so its changes belong to no request.
  const outside = unexplained(
    changed.filter((k) => !/^jobs\/[^/]+\/stats$/.test(k.slice(fx.etcdPrefix.length))),
    allowed,
  );
  if (outside.length === 0) return [];
  return [
    accepted
      ? `etcd changed outside the jobs the request names: ${outside.join(', ')}`
      : `etcd changed although the request was not taken: ${outside.join(', ')}`,
  ];
}

function summarize(executed: Executed): string {
  const text = JSON.stringify(executed.decoded ?? null, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  const outcome =
    executed.outcome.kind === 'status'
      ? `status ${grpc.status[executed.outcome.code]} reason ${executed.outcome.reason ?? '-'}: ${executed.outcome.details}`
      : executed.outcome.kind;
  return `${text.length > 600 ? text.slice(0, 600) + '…' : text}\noutcome ${outcome.slice(0, 400)}`;
}
