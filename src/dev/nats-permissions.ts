/**
 * The NATS users of a ckpt deployment and what each may publish and
 * subscribe to, rendered as the `authorization` block of a nats-server
 * configuration file, which the server enforces. Independent of how the
 * servers are deployed: include the block in any configuration. A server
 * in operator mode gets the same permissions in user JWTs (`nats-jwt.ts`).
 *
 * With `<p>` the subject prefix, the roles are:
 * - the coordinator: the only user that may publish the control subjects
 *   `<p>.*.trigger|complete|abort|recover` of every job; the JetStream API
 *   and object stores, to delete the state pieces of its jobs; its replies
 *   on `_INBOX.>`. It publishes no data and subscribes to no job subject.
 * - the worker of job J: publishes only J's data subjects
 *   `<p>.J.data.*.*` and, with a state bucket, that bucket's object store
 *   subjects and the JetStream API calls on its stream; subscribes only to
 *   J's control and data subjects and to its own inboxes `_INBOX_J.>` (the
 *   worker connects with `natsAuth.inboxPrefix` set to `workerInboxPrefix(J)`).
 * No other user exists, so nobody else reads or writes `<p>.>`.
 */
import { CONTROL_KINDS, DATA_TOKEN, assertSubjectPrefix, assertSubjectToken, workerInboxPrefix } from '../bus/index.js';
import { CkptError } from '../core/errors.js';

/** How a user proves who it is: a user name and password, or an NKey public key (`U...`). */
export type NatsUserCredentials = { user: string; password: string } | { nkey: string };

/** What one user may publish and subscribe to; deny wins over allow, and without an allow list all is allowed. */
export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
}

/** One job whose worker gets a user of its own. */
export interface NatsJobUser {
  jobId: string;
  credentials: NatsUserCredentials;
  /**
   * The object store bucket holding the job's snapshots, when the workers
   * use the NATS object store backend; give each job its own bucket, as
   * a worker may read and write every object of its bucket.
   * @default undefined (no JetStream access)
   */
  stateBucket?: string;
}

/** The users of one deployment. */
export interface NatsPermissionsPlan {
  /** The coordinator's `subjectPrefix`. */
  subjectPrefix: string;
  /** The coordinator's user (all its processes share it). */
  coordinator: NatsUserCredentials;
  /** One user per job. */
  jobs: readonly NatsJobUser[];
}

export { workerInboxPrefix };

/** The coordinator's permissions under `subjectPrefix`. */
export function coordinatorPermissions(subjectPrefix: string): NatsPermissions {
  const p = assertSubjectPrefix(subjectPrefix, 'subject prefix');
  return {
    publish: {
      allow: [...CONTROL_KINDS.map((kind) => `${p}.*.${kind}`), '$JS.API.>', '$O.>', '$JS.ACK.>', '$JS.FC.>'],
      deny: [`${p}.*.${DATA_TOKEN}.>`],
    },
    subscribe: { allow: ['_INBOX.>'], deny: [] },
  };
}

/** The permissions of the worker user of one job under `subjectPrefix`. */
export function workerPermissions(subjectPrefix: string, job: Omit<NatsJobUser, 'credentials'>): NatsPermissions {
  const p = assertSubjectPrefix(subjectPrefix, 'subject prefix');
  const j = `${p}.${assertSubjectToken(job.jobId, 'job id')}`;
  const data = `${j}.${DATA_TOKEN}.*.*`;
  const inbox = `${workerInboxPrefix(job.jobId)}.>`;
  const bucket = job.stateBucket === undefined ? [] : bucketSubjects(job.stateBucket);
  return {
    publish: {
      allow: [data, ...bucket],
      // Explicit, though outside the allow list: no worker speaks for the coordinator or answers another's request.
      deny: [...CONTROL_KINDS.map((kind) => `${p}.*.${kind}`), '_INBOX.>'],
    },
    subscribe: { allow: [...CONTROL_KINDS.map((kind) => `${j}.${kind}`), data, inbox], deny: [] },
  };
}

/**
 * What the object store client needs on one bucket (stream `OBJ_<bucket>`):
 * its JetStream API calls, the bucket's chunks and metadata, and the acks
 * and flow control of its consumers.
 */
function bucketSubjects(bucket: string): string[] {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(bucket))
    throw new CkptError('MALFORMED', `state bucket ${JSON.stringify(bucket)} is not 1-128 characters of [A-Za-z0-9_-]`);
  const stream = `OBJ_${bucket}`;
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.CREATE.${stream}`,
    `$JS.API.STREAM.PURGE.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$O.${bucket}.>`,
    `$JS.ACK.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** One user of a deployment: what it is for, the job it works for (none for the coordinator), its permissions. */
export interface NatsRolePermissions {
  role: string;
  jobId?: string;
  permissions: NatsPermissions;
}

/**
 * The permissions of every user of a deployment under `subjectPrefix`: the
 * coordinator's, then the worker's of each job in order. The `authorization`
 * block of `renderNatsPermissions` and the user JWTs of `issueNatsJwts` are
 * both made from it, so both grant the same subjects. Throws
 * `CkptError('MALFORMED')` when a job is listed twice.
 */
export function rolePermissions(
  subjectPrefix: string,
  jobs: readonly Omit<NatsJobUser, 'credentials'>[],
): NatsRolePermissions[] {
  const names = jobs.map((job) => job.jobId);
  const twice = names.find((id, i) => names.indexOf(id) !== i);
  if (twice !== undefined) throw new CkptError('MALFORMED', `job ${twice} is listed twice`);
  return [
    { role: 'coordinator', permissions: coordinatorPermissions(subjectPrefix) },
    ...jobs.map((job) => ({
      role: `worker of job ${job.jobId}`,
      jobId: job.jobId,
      permissions: workerPermissions(subjectPrefix, job),
    })),
  ];
}

/** The `authorization` block of a nats-server configuration with every user of `plan`. */
export function renderNatsPermissions(plan: NatsPermissionsPlan): string {
  const credentials = [plan.coordinator, ...plan.jobs.map((job) => job.credentials)];
  const users = rolePermissions(plan.subjectPrefix, plan.jobs).map(({ role, permissions }, i) =>
    renderUser(role, credentials[i] as NatsUserCredentials, permissions),
  );
  return [
    `# ckpt users and permissions for subject prefix ${plan.subjectPrefix}.`,
    'authorization {',
    '  users = [',
    ...users,
    '  ]',
    '}',
    '',
  ].join('\n');
}

function renderUser(role: string, credentials: NatsUserCredentials, permissions: NatsPermissions): string {
  const who =
    'nkey' in credentials
      ? [`nkey: ${quote(credentials.nkey)}`]
      : [`user: ${quote(credentials.user)}`, `password: ${quote(credentials.password)}`];
  const list = (subjects: string[]): string => `[${subjects.map(quote).join(', ')}]`;
  const side = (name: string, rules: { allow: string[]; deny: string[] }): string[] => [
    `        ${name}: {`,
    `          allow: ${list(rules.allow)}`,
    ...(rules.deny.length > 0 ? [`          deny: ${list(rules.deny)}`] : []),
    '        }',
  ];
  return [
    `    # ${role}`,
    '    {',
    ...who.map((line) => `      ${line}`),
    '      permissions: {',
    ...side('publish', permissions.publish),
    ...side('subscribe', permissions.subscribe),
    '      }',
    '    }',
  ].join('\n');
}

/** A double-quoted string of the nats-server configuration format. */
function quote(value: string): string {
  if ([...value].some((c) => c < ' ' || c === '"' || c === '\\'))
    throw new CkptError('MALFORMED', `${JSON.stringify(value)} holds a quote, backslash or control character`);
  return `"${value}"`;
}
