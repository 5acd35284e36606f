/**
 * The per-message properties: a call ends with a gRPC status or an answer
 * within its deadline; a refusal carries a known `ckpt-reason` whose status
 * code is the contract's for that reason, never UNKNOWN or INTERNAL, and a
 * message starting with the reason; what the contract says is invalid is
 * not accepted.
 */
import * as grpc from '@grpc/grpc-js';
import type { ErrorReason } from '../../src/core/errors.js';
import { ErrorReason as WireErrorReason } from '../../src/gen/ckpt/v1/ErrorReason.js';
import { STATUS_OF_REASON } from '../../src/server/status.js';
import type { Outcome } from './raw-calls.js';

/** The reasons of the contract, as `ckpt-reason` carries them. */
const REASONS: ReadonlySet<string> = new Set(
  Object.keys(WireErrorReason)
    .map((name) => name.replace(/^ERROR_REASON_/, ''))
    .filter((name) => name !== 'UNSPECIFIED'),
);

/** How the coordinator took one message. */
export interface Verdict {
  /**
   * It took the message (answered, or kept a stream open) rather than
   * refusing it; undefined when that cannot be told (see attach-exec.ts).
   */
  accepted: boolean | undefined;
  /** A refusal's reason, or `code <n>` for one without. */
  refusal: string | undefined;
  /** Properties the message broke; empty when all held. */
  problems: string[];
}

/** A refusal as the coordinator sent it: a stream's status, or a SessionResult's reason. */
export interface Refusal {
  code: grpc.status | undefined;
  reason: string | undefined;
  details: string;
}

/** The problems of one refusal. */
export function refusalProblems(r: Refusal): string[] {
  const code = r.code === undefined ? 'in a SessionResult' : `with ${grpc.status[r.code]}`;
  if (r.reason === undefined || r.reason === '') return [`refused ${code} without ckpt-reason: ${r.details}`];
  const problems: string[] = [];
  if (!REASONS.has(r.reason)) problems.push(`refused ${code} with unknown reason ${r.reason}`);
  if (r.reason === 'INTERNAL') problems.push(`refused ${code} with reason INTERNAL for a client's input: ${r.details}`);
  if (r.code === grpc.status.UNKNOWN || r.code === grpc.status.INTERNAL)
    problems.push(`refused ${code} (reason ${r.reason}): ${r.details}`);
  const expected = STATUS_OF_REASON[r.reason as ErrorReason] as grpc.status | undefined;
  if (r.code !== undefined && expected !== undefined && expected !== r.code)
    problems.push(`reason ${r.reason} came ${code}, not ${grpc.status[expected]}`);
  if (r.code !== undefined && !r.details.startsWith(r.reason))
    problems.push(`the status message does not start with ${r.reason}: ${r.details.slice(0, 120)}`);
  return problems;
}

/** Judges a unary or server-stream outcome; `invalid` lists what the contract refuses the request for. */
export function judgeCall(outcome: Outcome, invalid: readonly string[], deadlineMs: number): Verdict {
  switch (outcome.kind) {
    case 'hang':
      return { accepted: false, refusal: undefined, problems: [`no status within ${deadlineMs} ms`] };
    case 'status':
      if (outcome.code === grpc.status.OK) return accepted(invalid);
      return {
        accepted: false,
        refusal: outcome.reason ?? `code ${grpc.status[outcome.code]}`,
        problems: refusalProblems(outcome),
      };
    case 'ok':
    case 'open':
      return accepted(invalid);
  }
}

/** A message the coordinator took: a problem if the contract refuses it. */
export function accepted(invalid: readonly string[]): Verdict {
  const problems = invalid.length === 0 ? [] : [`accepted although ${invalid.join('; ')}`];
  return { accepted: true, refusal: undefined, problems };
}
