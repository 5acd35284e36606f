/**
 * Metrics of the gRPC API's access control: refused calls, by reason and
 * principal, and whether the access policy in force is older than its
 * file (the last reload failed). A burst of refusals is a misconfigured
 * client or someone probing; a stale policy is a change that did not
 * apply.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** What `AccessControl` reports. */
export interface AccessObserver {
  /** A call refused UNAUTHENTICATED (principal undefined) or PERMISSION_DENIED. */
  refused(reason: 'UNAUTHENTICATED' | 'PERMISSION_DENIED', principal: string | undefined): void;
  /** Whether the last reading of the policy file failed, leaving an older policy in force. */
  stale(stale: boolean): void;
}

/** The access metrics in `registry`. */
export class AccessMetrics implements AccessObserver {
  readonly #refusals: Counter<'reason' | 'principal'>;
  readonly #stale: Gauge;

  constructor(registry: Registry) {
    this.#refusals = new Counter({
      name: 'ckpt_access_refusals_total',
      help: 'Calls refused by access control, by reason and by the principal refused ("unknown" for credentials that name none)',
      labelNames: ['reason', 'principal'],
      registers: [registry],
    });
    this.#stale = new Gauge({
      name: 'ckpt_access_policy_stale',
      help: '1 while the last reading of the access policy file failed and an older policy stays in force',
      registers: [registry],
    });
  }

  refused(reason: 'UNAUTHENTICATED' | 'PERMISSION_DENIED', principal: string | undefined): void {
    this.#refusals.inc({ reason, principal: principal ?? 'unknown' });
  }

  stale(stale: boolean): void {
    this.#stale.set(stale ? 1 : 0);
  }
}
