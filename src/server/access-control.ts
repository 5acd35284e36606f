/**
 * Who a gRPC call comes from, and whether it may do what it asks.
 *
 * Three modes, from the coordinator's options:
 * - open: neither a token nor a policy; every call may do everything (a
 *   development setup, or one where mutual TLS alone admits clients);
 * - shared token (`--auth-token`): a call with the token may do
 *   everything, one without is UNAUTHENTICATED;
 * - access policy (`--access-policy`, see `access-policy.ts`): a call is
 *   identified by its bearer token or its client certificate, and may do
 *   what the principals it matches allow; the shared token, when also set,
 *   still allows everything.
 *
 * A call whose credentials match nothing is UNAUTHENTICATED; a known
 * caller that lacks the role or the job is PERMISSION_DENIED, with a reason
 * naming the principal, what it holds and what the call needs. Both are
 * refused before the call changes anything.
 *
 * The policy file, and the token files it names, are read again every
 * `reloadIntervalMs`: a changed policy applies to the calls that follow,
 * open streams keep the identity they started with. A file that does not
 * load keeps the policy in force and is logged, once per distinct error.
 */
import type * as grpc from '@grpc/grpc-js';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { CkptError } from '../core/errors.js';
import { echo } from '../core/validate.js';
import type { Logger } from '../log/index.js';
import type { AccessObserver } from '../metrics/access-metrics.js';
import {
  ROLES,
  loadAccessPolicy,
  tokenDigest,
  type AccessPolicy,
  type Action,
  type CertificateField,
  type Principal,
} from './access-policy.js';

/** The part of a gRPC server call that carries credentials. */
export interface CallCredentials {
  readonly metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null | undefined;
}

/** An identified caller: everything, or the principals its credentials match. */
export type Caller = { readonly all: true; readonly label: string } | { readonly all: false; readonly principals: readonly Principal[] }; // prettier-ignore

/** Options of an `AccessControl`. */
export interface AccessControlOptions {
  /** The shared token (`--auth-token`). */
  sharedToken?: string | undefined;
  /** The access policy file (`--access-policy`). */
  policyFile?: string | undefined;
  /** How often the policy's files are read again. @default 60000 */
  reloadIntervalMs?: number;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Told of refusals and of policy files that do not load. */
  observer?: AccessObserver;
}

const VERBS: Record<Action, string> = { read: 'read', work: 'run the tasks of', operate: 'operate' };

/** The roles that allow `action`, for messages. */
function rolesFor(action: Action): string {
  return Object.entries(ROLES)
    .filter(([, actions]) => (actions as readonly Action[]).includes(action))
    .map(([role]) => role)
    .join(', ');
}

function describe(principals: readonly Principal[]): string {
  return principals.map((p) => `${echo(p.name)} (${p.roles.join(', ')} on ${p.jobs.join(', ')})`).join(' and ');
}

/** The certificate's values of `field`. */
function certificateValues(cert: PeerCertificate, field: CertificateField): string[] {
  if (field === 'commonName') {
    const cn = cert.subject?.CN;
    return cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
  }
  const prefix = field === 'dnsName' ? 'DNS:' : 'URI:';
  return (cert.subjectaltname ?? '')
    .split(', ')
    .filter((name) => name.startsWith(prefix))
    .map((name) => name.slice(prefix.length));
}

function bearerToken(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get('authorization');
  const header = typeof values[0] === 'string' ? values[0] : '';
  if (header === '') return undefined;
  return /^Bearer (.+)$/i.exec(header)?.[1] ?? '';
}

/** The certificate a client presented, if any (grpc-js gives an empty object without one). */
function peerCertificate(call: CallCredentials): PeerCertificate | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  return cert !== undefined && cert.subject !== undefined ? cert : undefined;
}

/** Identifies calls and checks what they may do; see the module comment. */
export class AccessControl {
  readonly #shared: Buffer | undefined;
  readonly #file: string | undefined;
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #observer: AccessObserver | undefined;
  #policy: AccessPolicy | undefined;
  #fingerprint = '';
  #warned = '';
  #timer: NodeJS.Timeout | undefined;

  /** Loads the policy at once: a bad file throws `CkptError('MALFORMED')` before anything serves. */
  constructor(options: AccessControlOptions) {
    this.#shared = options.sharedToken === undefined ? undefined : tokenDigest(options.sharedToken);
    this.#file = options.policyFile;
    this.#log = options.logger.child({ component: 'access' });
    this.#env = options.env ?? process.env;
    this.#observer = options.observer;
    if (this.#file === undefined) return;
    this.#install(loadAccessPolicy(this.#file, this.#env));
    this.#timer = setInterval(() => this.reload(), options.reloadIntervalMs ?? 60_000).unref();
  }

  /** Whether calls must carry credentials at all. */
  get mode(): 'open' | 'shared token' | 'policy' {
    return this.#policy !== undefined ? 'policy' : this.#shared !== undefined ? 'shared token' : 'open';
  }

  /** Reads the policy's files again; keeps the policy in force when they do not load. */
  reload(): void {
    if (this.#file === undefined) return;
    try {
      this.#install(loadAccessPolicy(this.#file, this.#env));
      this.#warned = '';
      this.#observer?.stale(false);
    } catch (err) {
      this.#observer?.stale(true);
      const message = (err as Error).message;
      if (message !== this.#warned) this.#log.warn({ file: this.#file, err: message }, 'access policy not reloaded; the previous one stays in force'); // prettier-ignore
      this.#warned = message;
    }
  }

  #install(policy: AccessPolicy): void {
    const hash = createHash('sha256');
    for (const p of policy.principals) {
      const c = p.credential;
      hash.update(JSON.stringify([p.name, p.roles, p.jobs, c.kind, c.kind === 'token' ? c.digest.toString('hex') : [c.field, c.text]])); // prettier-ignore
    }
    const fingerprint = hash.digest('hex');
    if (fingerprint === this.#fingerprint) return;
    const first = this.#policy === undefined;
    this.#policy = policy;
    this.#fingerprint = fingerprint;
    this.#log.info({ file: this.#file, principals: policy.principals.length }, first ? 'access policy loaded' : 'access policy reloaded'); // prettier-ignore
  }

  /** Stops reloading. */
  close(): void {
    clearInterval(this.#timer);
  }

  /** Who `call` comes from; throws UNAUTHENTICATED when its credentials match nothing. */
  identify(call: CallCredentials): Caller {
    try {
      return this.#identify(call);
    } catch (err) {
      this.#observer?.refused('UNAUTHENTICATED', undefined);
      throw err;
    }
  }

  #identify(call: CallCredentials): Caller {
    const token = bearerToken(call.metadata);
    const policy = this.#policy;
    if (policy === undefined && this.#shared === undefined) return { all: true, label: 'anyone' };
    const digest = token === undefined ? undefined : tokenDigest(token);
    if (digest !== undefined && this.#shared !== undefined && timingSafeEqual(digest, this.#shared)) {
      return { all: true, label: 'the shared token' };
    }
    if (policy === undefined) {
      throw new CkptError(
        'UNAUTHENTICATED',
        token === undefined ? 'the call carries no authorization metadata' : 'the bearer token is not valid',
      );
    }
    const cert = peerCertificate(call);
    const matched: Principal[] = [];
    let tokenMatched = false;
    for (const p of policy.principals) {
      const c = p.credential;
      if (c.kind === 'token') {
        // Compare with every token principal, so that the time taken does not tell which one matched.
        if (digest !== undefined && timingSafeEqual(digest, c.digest)) {
          matched.push(p);
          tokenMatched = true;
        }
      } else if (cert !== undefined && certificateValues(cert, c.field).some((v) => c.pattern.test(v))) {
        matched.push(p);
      }
    }
    if (token !== undefined && !tokenMatched) throw new CkptError('UNAUTHENTICATED', 'the bearer token is not valid');
    if (matched.length === 0) {
      const name = cert === undefined ? undefined : certificateValues(cert, 'commonName')[0];
      throw new CkptError(
        'UNAUTHENTICATED',
        cert === undefined
          ? 'the call carries neither a bearer token nor a client certificate'
          : `the client certificate CN=${echo(name ?? '')} matches no principal of the access policy, and the call carries no bearer token`,
      );
    }
    return { all: false, principals: matched };
  }

  /** Whether `caller` may do `action` on job `jobId`. */
  allows(caller: Caller, action: Action, jobId: string): boolean {
    return caller.all || caller.principals.some((p) => p.actions.has(action) && p.jobPatterns.some((r) => r.test(jobId))); // prettier-ignore
  }

  /** Whether `caller` may do `action` on some jobs: calls that list jobs show it those. */
  allowsSome(caller: Caller, action: Action): boolean {
    return caller.all || caller.principals.some((p) => p.actions.has(action));
  }

  /**
   * Throws PERMISSION_DENIED unless `caller` may do `action` on `jobId`,
   * or, for `jobId` undefined, on every job (a pattern `*`).
   */
  require(caller: Caller, action: Action, jobId: string | undefined): void {
    if (caller.all) return;
    const ok =
      jobId === undefined
        ? caller.principals.some((p) => p.actions.has(action) && p.allJobs)
        : this.allows(caller, action, jobId);
    if (ok) return;
    this.#refusedAs(caller.principals);
    const what = jobId === undefined ? 'every job' : `job ${echo(jobId)}`;
    throw new CkptError(
      'PERMISSION_DENIED',
      `${describe(caller.principals)} may not ${VERBS[action]} ${what}: that needs one of the roles ${rolesFor(action)}` +
        (jobId === undefined ? ' on the job pattern "*"' : ' on a pattern matching it'),
      jobId === undefined ? {} : { jobId },
    );
  }

  /** Throws PERMISSION_DENIED unless `caller` may do `action` on some job. */
  requireSome(caller: Caller, action: Action): void {
    if (this.allowsSome(caller, action)) return;
    const principals = caller.all ? [] : caller.principals;
    this.#refusedAs(principals);
    throw new CkptError(
      'PERMISSION_DENIED',
      `${describe(principals)} may not ${VERBS[action]} any job: that needs one of the roles ${rolesFor(action)}`,
    );
  }

  #refusedAs(principals: readonly Principal[]): void {
    this.#observer?.refused('PERMISSION_DENIED', principals.map((p) => p.name).join('+'));
  }
}
