/**
 * How an etcd client stops calling a host that keeps failing, and how soon
 * it tries again. etcd3's default stops calling a host for 5 s after three
 * failed calls in a row, whatever happens meanwhile: when a partition from
 * etcd heals, every call still fails at once for up to 5 s, commits abort,
 * and a leader that cannot confirm its election key for that long steps
 * down. Here the first call through comes 100 ms after the third failure,
 * and each failed try doubles the wait, up to 1 s: a dead host costs at most
 * one call a second, and a healed one is used again within a second.
 */
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen } from 'cockatiel';
import { isRecoverableError, type IOptions } from 'etcd3';

/** Failed calls in a row after which a host is not called for a while. */
export const HOST_FAILURES_TO_BREAK = 3;
/** The wait before the first call through after the breaker opens, ms. */
export const HOST_RETRY_FIRST_MS = 100;
/** The longest wait between calls through to a host that keeps failing, ms. */
export const HOST_RETRY_MAX_MS = 1000;

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** etcd3's `faultHandling.host`: a fresh breaker for each host. */
export function etcdHostBreaker(): HostPolicy {
  return circuitBreaker(handleWhen(isRecoverableError), {
    halfOpenAfter: new ExponentialBackoff({ initialDelay: HOST_RETRY_FIRST_MS, maxDelay: HOST_RETRY_MAX_MS }),
    breaker: new ConsecutiveBreaker(HOST_FAILURES_TO_BREAK),
  });
}
