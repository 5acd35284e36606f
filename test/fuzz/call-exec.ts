/**
 * Sends one case of an RPC target (unary, or the server stream of
 * WatchCheckpoints) and judges what came back.
 */
import { caseBytes, type FuzzCase } from './cases.js';
import { requestProblems } from './contract.js';
import type { Fixture } from './fixture.js';
import { judgeCall, type Verdict } from './judge.js';
import type { Outcome } from './raw-calls.js';
import type { Target } from './targets.js';
import { decode, type Message } from './wire.js';

/**
 * How long a valid watch must stay open to count as taken. A refusal comes
 * at once; one that came later would only be left unjudged: valid watches
 * are not held to the contract's refusals.
 */
const WATCH_OPEN_MS = 20;

/** What one sent case came to. */
export interface Executed {
  verdict: Verdict;
  /** The outcome as received. */
  outcome: Outcome;
  /** The job ids the request names: an accepted request may change their keys. */
  touches: string[];
  /** The request as the coordinator decoded it (undefined: undecodable). */
  decoded: Message | undefined;
  /** Why the contract refuses it. */
  invalid: string[];
}

/** Job ids a decoded request names. */
export function namedJobs(m: Message | undefined): string[] {
  const spec = m?.spec;
  const fromSpec = typeof spec === 'object' && spec !== null && !Array.isArray(spec) ? spec.jobId : undefined;
  return [m?.jobId, fromSpec].filter((id): id is string => typeof id === 'string' && id !== '');
}

async function jobExists(fx: Fixture, jobId: string): Promise<boolean> {
  try {
    await fx.client.getJob({ jobId }, { deadlineMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** Sends `c` to the target's RPC and judges the outcome. */
export async function executeCall(fx: Fixture, target: Target, c: FuzzCase, deadlineMs: number): Promise<Executed> {
  const body = caseBytes(target, c, fx.nextLane());
  const decoded = decode(target.requestType, body);
  const invalid = decoded === undefined ? ['the body is not a valid message'] : requestProblems(target.name, decoded);
  let outcome: Outcome;
  if (target.method.kind === 'server-stream') {
    // A watch of every job or of a job that exists stays open; any other must be refused.
    const jobId = typeof decoded?.jobId === 'string' ? decoded.jobId : '';
    const mayStay = invalid.length === 0 && (jobId === '' || (await jobExists(fx, jobId)));
    outcome = await fx.raw.serverStream(target.method.path, body, mayStay ? WATCH_OPEN_MS : deadlineMs, deadlineMs);
  } else {
    outcome = await fx.raw.unary(target.method.path, body, deadlineMs);
  }
  return { verdict: judgeCall(outcome, invalid, deadlineMs), outcome, touches: namedJobs(decoded), decoded, invalid };
}
