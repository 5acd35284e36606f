/**
 * Local etcd and NATS servers on loopback ports with temporary data, started
 * and torn down by tests, the demo and benchmarks, and a TCP proxy that cuts
 * and stalls the links to them; the NATS users of a deployment, as an
 * `authorization` block or as JWTs of a server in operator mode.
 */
export { freePort } from './free-port.js';
export { trackChild } from './child-registry.js';
export { DEFAULT_START_TIMEOUT_MS, ServerStartError, type ManagedServer } from './server-process.js';
export {
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdOptions,
  type EtcdProcess,
  type EtcdTlsOptions,
} from './etcd-process.js';
export {
  startNats,
  startNatsCluster,
  type NatsCluster,
  type NatsClusterOptions,
  type NatsOptions,
  type NatsProcess,
} from './nats-process.js';
export { startTcpProxy, type TcpProxy, type TcpProxyOptions, type TcpProxyState } from './tcp-proxy.js';
export {
  killLocalServersSync,
  startLocalServers,
  type LocalServers,
  type LocalServersOptions,
} from './local-servers.js';
export {
  clientInboxPrefix,
  coordinatorPermissions,
  renderNatsPermissions,
  rolePermissions,
  streamClientPermissions,
  workerInboxPrefix,
  workerPermissions,
  type NatsJobUser,
  type NatsPermissions,
  type NatsPermissionsPlan,
  type NatsRolePermissions,
  type NatsStreamAccess,
  type NatsStreamClient,
  type NatsUserCredentials,
} from './nats-permissions.js';
export {
  accountJwt,
  decodeNatsJwt,
  encodeNatsJwt,
  issueNatsJwts,
  operatorJwt,
  renderCredsFile,
  renderOperatorConfig,
  userJwt,
  type DecodedNatsJwt,
  type NatsJwtClaims,
  type NatsJwtDeployment,
  type NatsJwtKind,
  type NatsJwtPlan,
  type NatsKeyPair,
  type NatsOperatorConfig,
} from './nats-jwt.js';
export {
  createLocalCa,
  createRsaKey,
  exportPkcs12,
  LOOPBACK_NAMES,
  makeTestPki,
  type CertFiles,
  type CertUsage,
  type LocalCa,
  type TestPki,
} from './pki.js';
export { enableEtcdAuth, etcdctl, type EtcdAuthPlan, type EtcdctlTarget } from './etcd-auth.js';
export {
  accessPolicy,
  COMMON_NAMES,
  COORDINATOR_ETCD_USER,
  COORDINATOR_NATS_USER,
  DEFAULT_SECURE_ETCD_PREFIX,
  DEFAULT_SECURE_SUBJECT_PREFIX,
  PKCS12_PASSWORD,
  startSecureCluster,
  workerCommonName,
  type ClusterIdentity,
  type SecureCluster,
  type SecureClusterOptions,
  type SecureJob,
} from './secure-cluster.js';
