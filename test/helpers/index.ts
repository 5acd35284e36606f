/**
 * Test helpers: per-file servers, per-test prefixes, self-closing clients, polling,
 * refusals and raw sessions, samples of Prometheus text and promtool, and the handles that keep
 * a process alive (the exit report, ava's `require`).
 */
export { useServers, type TestServers, type UseServersOptions } from './servers.js';
export { slugify, uniquePrefix, type TestPrefix, type Titled } from './prefix.js';
export { etcdClient, natsConnection, DEFAULT_ETCD_CALL_MS } from './clients.js';
export { activeHandles, describeHandle, leakedSockets } from './handles.js';
export { sample } from './metrics-text.js';
export { promtool } from './promtool.js';
export { healthCheck, rawSession, reflectionList, refused, type RawSession } from './refusals.js';
export {
  eventually,
  processExists,
  within,
  DEFAULT_EVENTUALLY_MS,
  DEFAULT_POLL_MS,
  DEFAULT_WITHIN_MS,
  type EventuallyOptions,
} from './wait.js';
