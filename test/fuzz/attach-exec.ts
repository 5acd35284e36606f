/**
 * Sends one case of an Attach target in its mode and judges what came
 * back:
 *
 * - `first`: the case is the stream's first message;
 * - `session`: after a valid hello for a task of `session` and its welcome;
 * - `standby`: after a valid standby hello for a task of `main`, which
 *   another session runs, so the standby waits unanswered.
 *
 * A probe follows the case: an acknowledgement of nothing, which a live
 * session answers with a SessionResult and which ends a waiting standby.
 * So the case was taken when the probe's result comes, refused when the
 * stream ends first, and the coordinator stalled when neither happens
 * within the deadline. A standby's heartbeat and the probe after it cannot
 * be told apart, so a standby's case whose stream ends counts as neither
 * taken nor refused.
 */
import * as grpc from '@grpc/grpc-js';
import { caseBytes, type FuzzCase } from './cases.js';
import { attachProblems, effectiveBody } from './contract.js';
import { JOBS, type Fixture, type FixtureContext } from './fixture.js';
import { refusalProblems, type Verdict } from './judge.js';
import type { RawAttach } from './raw-calls.js';
import type { Executed } from './call-exec.js';
import type { Target } from './targets.js';
import { decode, encode, enumValueName, type Message } from './wire.js';

/** The request id of the probe. */
const PROBE_ID = 4_242_424_242n;
const PROBE = encode('AttachRequest', {
  acknowledge: { requestId: PROBE_ID, epoch: 0n, checkpointId: 0n, snapshots: [] },
});
/**
 * How long a first hello that asks to be a standby gets to be answered
 * before it counts as waiting; one answered later is left unjudged, never
 * misjudged.
 */
const STANDBY_GRACE_MS = 100;
/** Tries to open the `session` preamble when the lane's task is still attached by an earlier case. */
const PREAMBLE_TRIES = 5;

interface Reply {
  body: string;
  reason: string | undefined;
  message: string;
}

function replies(frames: readonly Buffer[]): Reply[] {
  return frames.map((frame) => {
    const m = decode('AttachResponse', frame);
    const result = m?.result as Message | undefined;
    const n = typeof result?.errorReason === 'number' ? result.errorReason : 0;
    const reason = enumValueName('ErrorReason', n)?.replace(/^ERROR_REASON_/, '') ?? `reason ${n}`;
    const body = typeof m?.body === 'string' ? m.body : 'undecodable';
    return { body, reason, message: typeof result?.errorMessage === 'string' ? result.errorMessage : '' };
  });
}

function hello(ctx: FixtureContext, mode: 'session' | 'standby'): Buffer {
  const session = mode === 'session';
  return encode('AttachRequest', {
    hello: {
      workerId: ctx.laneWorker,
      jobId: session ? JOBS.session : JOBS.main,
      taskIds: [session ? ctx.sessionTask : 'src-0'],
      labels: { sdk: 'fuzz' },
      epoch: 0n,
      standby: !session,
    },
  });
}

/** Opens the stream and sends what precedes the case in `mode`; the fixture's lane moves on between tries. */
async function open(fx: Fixture, mode: FuzzCase['mode'], deadlineMs: number): Promise<RawAttach> {
  for (let attempt = 1; ; attempt++) {
    const stream = fx.raw.attach();
    if (mode === 'first') return stream;
    stream.write(hello(fx.context, mode === 'session' ? 'session' : 'standby'));
    if (mode === 'standby') return stream;
    await stream.until((r) => r.length > 0, deadlineMs);
    if (replies(stream.responses)[0]?.body === 'welcome') return stream;
    stream.close();
    const why = stream.status?.kind === 'status' ? stream.status.details : 'no welcome';
    if (attempt >= PREAMBLE_TRIES) throw new Error(`the fixture's session hello was not welcomed: ${why}`);
    fx.nextLane();
  }
}

function isStandbyHello(m: Message | undefined): boolean {
  const h = m?.hello;
  return typeof h === 'object' && h !== null && !Array.isArray(h) && h.standby === true;
}

/** Sends `c` in its mode, then the probe, and judges. */
export async function executeAttach(fx: Fixture, target: Target, c: FuzzCase, deadlineMs: number): Promise<Executed> {
  const mode = c.mode ?? 'first';
  fx.nextLane();
  const stream = await open(fx, mode, deadlineMs);
  const frame = caseBytes(target, c, fx.context);
  const decoded = decode('AttachRequest', frame);
  const invalid = decoded === undefined ? ['the frame is not a valid message'] : attachProblems(mode, decoded);
  const touches = [mode === 'session' ? JOBS.session : mode === 'standby' ? JOBS.main : ''];
  const hello = decoded?.hello as Message | undefined;
  if (typeof hello?.jobId === 'string') touches.push(hello.jobId);
  try {
    const base = stream.responses.length;
    stream.write(frame);
    const waiting = mode === 'first' && isStandbyHello(decoded);
    if (waiting) await stream.until((r) => r.length > base, STANDBY_GRACE_MS);
    const answered = stream.responses.length > base;
    stream.write(PROBE);
    const body = decoded === undefined ? '' : effectiveBody(mode, decoded);
    const results = mode === 'session' && (body === 'acknowledge' || body === 'decline') ? 2 : 1;
    const count = (r: readonly Buffer[]): number => replies(r.slice(base)).filter((x) => x.body === 'result').length;
    const done = await stream.until((r) => count(r) >= results, deadlineMs);
    const verdict = judge(
      stream,
      base,
      { done, results, unclear: mode === 'standby' || (waiting && !answered) },
      invalid,
    );
    const outcome = stream.status ?? { kind: 'ok' as const, ms: 0, responses: stream.responses };
    return { verdict, outcome, touches: touches.filter((j) => j !== ''), decoded, invalid };
  } finally {
    stream.close();
  }
}

function judge(
  stream: RawAttach,
  base: number,
  how: { done: boolean; results: number; unclear: boolean },
  invalid: readonly string[],
): Verdict {
  if (!how.done)
    return { accepted: false, refusal: undefined, problems: ['no status and no SessionResult within the deadline'] };
  const results = replies(stream.responses.slice(base)).filter((r) => r.body === 'result');
  const own = how.results === 2 ? results[0] : undefined;
  if (own !== undefined && own.reason !== 'UNSPECIFIED') {
    return {
      accepted: false,
      refusal: own.reason,
      problems: refusalProblems({ code: undefined, reason: own.reason, details: own.message }),
    };
  }
  const status = stream.status;
  if (status?.kind === 'status' && results.length < how.results) {
    const refusal = status.reason ?? `code ${status.code}`;
    const problems = status.code === grpc.status.OK ? [] : refusalProblems(status);
    return { accepted: how.unclear ? undefined : false, refusal, problems };
  }
  const problems = invalid.length === 0 ? [] : [`accepted although ${invalid.join('; ')}`];
  return { accepted: true, refusal: undefined, problems };
}
