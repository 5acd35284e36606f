/**
 * `ckpt coordinator`: runs a coordinator until SIGTERM or SIGINT, then
 * shuts down gracefully (a second signal forces).
 */
import type { Command } from 'commander';
import type { CoordinatorConfigInput } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { RunningCoordinator } from '../server/run.js';

/**
 * Credentials and TLS of NATS and etcd. Passwords and tokens have no flag,
 * as a command line is visible to every user of the host: they come from
 * their environment variable or a file.
 */
const SECURITY_FLAGS: Array<[flag: string, option: keyof CoordinatorConfigInput, help: string]> = [
  ['--nats-user <name>', 'natsUser', 'NATS user; password from CKPT_NATS_PASSWORD or --nats-password-file'],
  ['--nats-password-file <file>', 'natsPasswordFile', 'file holding the NATS password (CKPT_NATS_PASSWORD_FILE)'],
  ['--nats-token-file <file>', 'natsTokenFile', 'file holding the NATS token (or CKPT_NATS_TOKEN)'],
  ['--nats-nkey-seed-file <file>', 'natsNkeySeedFile', 'NKey seed of the NATS user (CKPT_NATS_NKEY_SEED_FILE)'],
  ['--nats-creds-file <file>', 'natsCredsFile', 'NATS creds file, user JWT and seed (CKPT_NATS_CREDS_FILE)'],
  ['--nats-tls-ca-file <file>', 'natsTlsCaFile', 'CA of the NATS servers; implies TLS (CKPT_NATS_TLS_CA_FILE)'],
  ['--nats-tls-cert-file <file>', 'natsTlsCertFile', 'NATS client certificate (CKPT_NATS_TLS_CERT_FILE)'],
  ['--nats-tls-key-file <file>', 'natsTlsKeyFile', 'key of the NATS client certificate (CKPT_NATS_TLS_KEY_FILE)'],
  ['--etcd-user <name>', 'etcdUser', 'etcd user; password from CKPT_ETCD_PASSWORD or --etcd-password-file'],
  ['--etcd-password-file <file>', 'etcdPasswordFile', 'file holding the etcd password (CKPT_ETCD_PASSWORD_FILE)'],
  ['--etcd-tls-ca-file <file>', 'etcdTlsCaFile', 'CA of the etcd servers; https:// URLs (CKPT_ETCD_TLS_CA_FILE)'],
  ['--etcd-tls-cert-file <file>', 'etcdTlsCertFile', 'etcd client certificate (CKPT_ETCD_TLS_CERT_FILE)'],
  ['--etcd-tls-key-file <file>', 'etcdTlsKeyFile', 'key of the etcd client certificate (CKPT_ETCD_TLS_KEY_FILE)'],
];

/** Flags of `ckpt coordinator`, each feeding the config option of the same name. */
const FLAGS: Array<[flag: string, option: keyof CoordinatorConfigInput, help: string]> = [
  ['--etcd <urls>', 'etcd', 'etcd client URLs, comma-separated (CKPT_ETCD)'],
  ['--nats <urls>', 'nats', 'NATS server URLs, comma-separated (CKPT_NATS)'],
  ['--listen <addr>', 'listen', 'gRPC listen address host:port (CKPT_LISTEN)'],
  [
    '--http-listen <addr>',
    'httpListen',
    'HTTP address of /metrics, /healthz, /readyz (CKPT_HTTP_LISTEN; default: the gRPC port + 1)',
  ],
  [
    '--advertise <addr>',
    'advertise',
    'address host:port that clients and other coordinators reach this one at (CKPT_ADVERTISE)',
  ],
  ['--lease-ttl-ms <ms>', 'leaseTtlMs', 'TTL of the leader election lease (CKPT_LEASE_TTL_MS)'],
  [
    '--leader-probe-interval-ms <ms>',
    'leaderProbeIntervalMs',
    "how often a standby checks that the leader's process listens; 0: off (CKPT_LEADER_PROBE_INTERVAL_MS)",
  ],
  [
    '--job-groups <n>',
    'jobGroups',
    'independent leader elections the jobs are spread over, fixed per etcd prefix; 1: one leader runs every job (CKPT_JOB_GROUPS)',
  ],
  ['--etcd-prefix <prefix>', 'etcdPrefix', 'prefix of every etcd key (CKPT_ETCD_PREFIX)'],
  ['--subject-prefix <prefix>', 'subjectPrefix', 'first token of every NATS subject (CKPT_SUBJECT_PREFIX)'],
  ['--auth-token <token>', 'authToken', 'require "authorization: Bearer <token>" on every call (CKPT_AUTH_TOKEN)'],
  ['--http-tls <on|off>', 'httpTls', "HTTPS on the HTTP port with the gRPC server's certificate (CKPT_HTTP_TLS)"],
  [
    '--access-policy <file>',
    'accessPolicy',
    'JSON file of principals (tokens, client certificates) and their roles on jobs (CKPT_ACCESS_POLICY)',
  ],
  ['--heartbeat-interval-ms <ms>', 'heartbeatIntervalMs', 'worker heartbeat interval (CKPT_HEARTBEAT_INTERVAL_MS)'],
  [
    '--heartbeat-timeout-ms <ms>',
    'heartbeatTimeoutMs',
    'session timeout without heartbeat (CKPT_HEARTBEAT_TIMEOUT_MS)',
  ],
  ['--etcd-timeout-ms <ms>', 'etcdTimeoutMs', 'deadline of each etcd request (CKPT_ETCD_TIMEOUT_MS)'],
  ['--max-message-bytes <n>', 'maxMessageBytes', 'largest gRPC message (CKPT_MAX_MESSAGE_BYTES)'],
  ['--id-block-size <n>', 'idBlockSize', 'checkpoint ids reserved per etcd write (CKPT_ID_BLOCK_SIZE)'],
  ['--history-size <n>', 'historySize', 'finished checkpoints remembered per job (CKPT_HISTORY_SIZE)'],
  ['--shutdown-grace-ms <ms>', 'shutdownGraceMs', 'graceful shutdown limit (CKPT_SHUTDOWN_GRACE_MS)'],
  ['--log-level <level>', 'logLevel', 'fatal|error|warn|info|debug|trace|silent (CKPT_LOG_LEVEL)'],
  ['--hello-timeout-ms <ms>', 'helloTimeoutMs', 'end an Attach stream without a hello (CKPT_HELLO_TIMEOUT_MS)'],
  ['--standby-timeout-ms <ms>', 'standbyTimeoutMs', 'end a silent waiting standby (CKPT_STANDBY_TIMEOUT_MS)'],
  ['--state-uri-schemes <list>', 'stateUriSchemes', 'accepted state handle URI schemes (CKPT_STATE_URI_SCHEMES)'],
  [
    '--orphan-grace-ms <ms>',
    'orphanGraceMs',
    'age before an uncommitted state piece counts as an orphan (CKPT_ORPHAN_GRACE_MS)',
  ],
  [
    '--state-sweep-interval-ms <ms>',
    'stateSweepIntervalMs',
    'how often the leader sweeps for orphaned state (CKPT_STATE_SWEEP_INTERVAL_MS)',
  ],
  [
    '--canceled-state-retention-ms <ms>',
    'canceledStateRetentionMs',
    "how long a canceled job's state is kept (CKPT_CANCELED_STATE_RETENTION_MS)",
  ],
  ['--max-manifest-bytes <n>', 'maxManifestBytes', 'largest manifest read from etcd (CKPT_MAX_MANIFEST_BYTES)'],
  ['--max-jobs <n>', 'maxJobs', 'most jobs (CKPT_MAX_JOBS)'],
  ['--max-tasks-per-job <n>', 'maxTasksPerJob', 'most tasks of one job (CKPT_MAX_TASKS_PER_JOB)'],
  ['--max-sessions <n>', 'maxSessions', 'most live worker sessions (CKPT_MAX_SESSIONS)'],
  ['--max-standbys-per-job <n>', 'maxStandbysPerJob', 'most waiting standbys per job (CKPT_MAX_STANDBYS_PER_JOB)'],
  ['--max-watchers <n>', 'maxWatchers', 'most WatchCheckpoints streams (CKPT_MAX_WATCHERS)'],
  [
    '--max-pending-ack-bytes-per-job <n>',
    'maxPendingAckBytesPerJob',
    'acknowledgement bytes a job may hold pending (CKPT_MAX_PENDING_ACK_BYTES_PER_JOB)',
  ],
  [
    '--max-message-text-bytes <n>',
    'maxMessageTextBytes',
    'longest decline or failure message (CKPT_MAX_MESSAGE_TEXT_BYTES)',
  ],
  [
    '--max-policy-duration-ms <ms>',
    'maxPolicyDurationMs',
    'longest duration in a checkpoint policy (CKPT_MAX_POLICY_DURATION_MS)',
  ],
  ['--max-state-bytes <n>', 'maxStateBytes', 'largest acknowledged snapshot size (CKPT_MAX_STATE_BYTES)'],
  [
    '--max-unread-reply-bytes <n>',
    'maxUnreadReplyBytes',
    'unread reply bytes after which a stream is ended (CKPT_MAX_UNREAD_REPLY_BYTES)',
  ],
  // TLS of the gRPC API.
  ['--tls-cert <file>', 'tlsCert', 'PEM certificate chain: serve TLS only (CKPT_TLS_CERT)'],
  ['--tls-key <file>', 'tlsKey', 'PEM private key of --tls-cert (CKPT_TLS_KEY)'],
  [
    '--tls-client-ca <file>',
    'tlsClientCa',
    'PEM CA certificates: require client certificates they signed (CKPT_TLS_CLIENT_CA)',
  ],
  [
    '--tls-reload-interval-ms <ms>',
    'tlsReloadIntervalMs',
    'how often the TLS files are reread (CKPT_TLS_RELOAD_INTERVAL_MS)',
  ],
  [
    '--peer-tls-ca <file>',
    'peerTlsCa',
    'CA a standby checks the leader with (CKPT_PEER_TLS_CA; default: --tls-client-ca, else system CAs)',
  ],
  [
    '--peer-tls-cert <file>',
    'peerTlsCert',
    'client certificate towards the leader (CKPT_PEER_TLS_CERT; default under mTLS: --tls-cert)',
  ],
  ['--peer-tls-key <file>', 'peerTlsKey', 'private key of --peer-tls-cert (CKPT_PEER_TLS_KEY)'],
  [
    '--peer-tls-server-name <name>',
    'peerTlsServerName',
    "name the leader's certificate is checked for (CKPT_PEER_TLS_SERVER_NAME)",
  ],
  ...SECURITY_FLAGS,
];

/** Adds the `coordinator` command to the program. */
export function addCoordinatorCommand(program: Command): void {
  const command = program.command('coordinator').description('run a checkpoint coordinator (gRPC server)');
  for (const [flag, , help] of FLAGS) command.option(flag, help);
  command.action(async (_: unknown, cmd: Command) => {
    // `--tls-cert` and `--tls-key` are also the clients' global flags, which may take them first.
    const flags = cmd.optsWithGlobals<Record<string, string | undefined>>();
    const input: CoordinatorConfigInput = {};
    for (const [, option] of FLAGS) {
      const value = flags[option];
      if (value !== undefined) (input as Record<string, string>)[option] = value;
    }
    const { logger, running } = await startCoordinator(input);
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: forcing shutdown');
        void running.kill().finally(() => process.exit(1));
        return;
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      running.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * Resolves the config and starts a coordinator. The server modules load
 * here, so that the client commands start without them.
 */
export async function startCoordinator(
  input: CoordinatorConfigInput,
): Promise<{ logger: Logger; running: RunningCoordinator }> {
  const [{ resolveConfig }, { createLogger }, { runCoordinator }] = await Promise.all([
    import('../config/index.js'),
    import('../log/index.js'),
    import('../server/run.js'),
  ]);
  const config = resolveConfig(input);
  const logger = createLogger(config.logLevel);
  return { logger, running: await runCoordinator(config, logger) };
}
