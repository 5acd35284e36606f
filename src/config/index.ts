/** Configuration of the coordinator process. */
export * from './config.js';
export { resolveConfig } from './resolve-config.js';
export {
  DEFAULT_CONNECTION_SECURITY,
  etcdSecurityOf,
  natsAuthOf,
  resolveConnectionSecurity,
} from './connection-security.js';
export type { ConnectionSecurityConfig, EtcdSecurity } from './connection-security.js';
