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
 *   `<p>.J.data.*.*` and the credits of their flow control `<p>.J.credit.*.*`
 *   and, with a state bucket, that bucket's object store
 *   subjects and the JetStream API calls on its stream; subscribes only to
 *   J's control, data and credit subjects and to its own inboxes `_INBOX_J.>` (the
 *   worker connects with `natsAuth.inboxPrefix` set to `workerInboxPrefix(J)`);
 *   with application streams (`streams`: what its sources read and its sinks
 *   write), the JetStream API calls on those streams and the sinks' subjects.
 * - a stream client N (`clients`: whoever feeds a job's input streams or reads
 *   its output streams): the JetStream API calls on its streams, publication
 *   on the subjects given, and its own inboxes `clientInboxPrefix(N)`.
 * No other user exists, so nobody else reads or writes `<p>.>`, and no
 * stream client or application stream may name a subject under `<p>`.
 */
import {
  CONTROL_KINDS,
  CREDIT_TOKEN,
  DATA_TOKEN,
  assertSubjectPrefix,
  assertSubjectToken,
  workerInboxPrefix,
} from '../bus/index.js';
import { CkptError } from '../core/errors.js';

/** How a user proves who it is: a user name and password, or an NKey public key (`U...`). */
export type NatsUserCredentials = { user: string; password: string } | { nkey: string };

/** What one user may publish and subscribe to; deny wins over allow, and without an allow list all is allowed. */
export interface NatsPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
}

/**
 * An application stream a job's tasks or a stream client use, and how.
 * Every user of a stream may look it up (`$JS.API.INFO`,
 * `$JS.API.STREAM.INFO.<stream>`); the rest is granted only as asked.
 */
export interface NatsStreamAccess {
  /** The stream's name. */
  stream: string;
  /**
   * Reads it with consumers, as a JetStream source or a reader of output
   * does: creates, looks up and deletes consumers, pulls, answers flow
   * control. Default false.
   */
  consume?: boolean;
  /** Reads single messages by sequence or subject (`getMessage`, direct gets). Default false. */
  get?: boolean;
  /** Creates it when it does not exist, as a sink with `createStream` does. Default false. */
  create?: boolean;
  /**
   * Subjects of the stream the user publishes to (a sink's subject, a
   * feeder's input subjects); `*` and `>` allowed. Default: none.
   */
  publish?: readonly string[];
}

/** A user outside the jobs that feeds their input streams or reads their output streams. */
export interface NatsStreamClient {
  /** Names the user; its inboxes are `clientInboxPrefix(name)`. */
  name: string;
  credentials: NatsUserCredentials;
  /** The streams it creates, reads or publishes to. */
  streams: readonly NatsStreamAccess[];
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
  /**
   * The application streams the job's sources read and its sinks write.
   * @default [] (no application streams)
   */
  streams?: readonly NatsStreamAccess[];
}

/** The users of one deployment. */
export interface NatsPermissionsPlan {
  /** The coordinator's `subjectPrefix`. */
  subjectPrefix: string;
  /** The coordinator's user (all its processes share it). */
  coordinator: NatsUserCredentials;
  /** One user per job. */
  jobs: readonly NatsJobUser[];
  /**
   * Users that feed or read the jobs' application streams.
   * @default []
   */
  clients?: readonly NatsStreamClient[];
}

export { workerInboxPrefix };

/** The inbox prefix a stream client named `name` connects with. */
export function clientInboxPrefix(name: string): string {
  return `_INBOX_CLIENT_${assertSubjectToken(name, 'client name')}`;
}

/** The coordinator's permissions under `subjectPrefix`. */
export function coordinatorPermissions(subjectPrefix: string): NatsPermissions {
  const p = assertSubjectPrefix(subjectPrefix, 'subject prefix');
  return {
    publish: {
      allow: [...CONTROL_KINDS.map((kind) => `${p}.*.${kind}`), '$JS.API.>', '$O.>', '$JS.ACK.>', '$JS.FC.>'],
      deny: [`${p}.*.${DATA_TOKEN}.>`, `${p}.*.${CREDIT_TOKEN}.>`],
    },
    subscribe: { allow: ['_INBOX.>'], deny: [] },
  };
}

/** The permissions of the worker user of one job under `subjectPrefix`. */
export function workerPermissions(subjectPrefix: string, job: Omit<NatsJobUser, 'credentials'>): NatsPermissions {
  const p = assertSubjectPrefix(subjectPrefix, 'subject prefix');
  const j = `${p}.${assertSubjectToken(job.jobId, 'job id')}`;
  const data = `${j}.${DATA_TOKEN}.*.*`;
  const credit = `${j}.${CREDIT_TOKEN}.*.*`;
  const inbox = `${workerInboxPrefix(job.jobId)}.>`;
  const bucket = job.stateBucket === undefined ? [] : bucketSubjects(job.stateBucket);
  const streams = streamsSubjects(p, job.streams ?? []);
  return {
    publish: {
      allow: [data, credit, ...bucket, ...streams],
      // Explicit, though outside the allow list: no worker speaks for the coordinator or answers another's request.
      deny: [...CONTROL_KINDS.map((kind) => `${p}.*.${kind}`), '_INBOX.>'],
    },
    subscribe: { allow: [...CONTROL_KINDS.map((kind) => `${j}.${kind}`), data, credit, inbox], deny: [] },
  };
}

/**
 * The permissions of a stream client under `subjectPrefix`: its streams and
 * its own inboxes, nothing of ckpt's.
 */
export function streamClientPermissions(
  subjectPrefix: string,
  client: Omit<NatsStreamClient, 'credentials'>,
): NatsPermissions {
  const p = assertSubjectPrefix(subjectPrefix, 'subject prefix');
  if (client.streams.length === 0) throw new CkptError('MALFORMED', `stream client ${client.name} has no streams`);
  return {
    publish: { allow: streamsSubjects(p, client.streams), deny: [`${p}.>`, '_INBOX.>'] },
    subscribe: { allow: [`${clientInboxPrefix(client.name)}.>`], deny: [] },
  };
}

/** The subjects of every stream in `streams`, each once, in order. */
function streamsSubjects(prefix: string, streams: readonly NatsStreamAccess[]): string[] {
  const subjects = streams.flatMap((s) => [...streamApiSubjects(s), ...publishSubjects(prefix, s)]);
  return [...new Set(subjects)];
}

/** The JetStream API calls `access` asks for on its stream. */
function streamApiSubjects(access: NatsStreamAccess): string[] {
  const stream = access.stream;
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(stream))
    throw new CkptError('MALFORMED', `stream ${JSON.stringify(stream)} is not 1-128 characters of [A-Za-z0-9_-]`);
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${stream}`,
    ...(access.create === true ? [`$JS.API.STREAM.CREATE.${stream}`] : []),
    ...(access.consume === true
      ? [
          `$JS.API.CONSUMER.CREATE.${stream}`,
          `$JS.API.CONSUMER.CREATE.${stream}.>`,
          `$JS.API.CONSUMER.INFO.${stream}.>`,
          `$JS.API.CONSUMER.DELETE.${stream}.>`,
          `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
          `$JS.FC.${stream}.>`,
        ]
      : []),
    ...(access.get === true ? [`$JS.API.STREAM.MSG.GET.${stream}`, `$JS.API.DIRECT.GET.${stream}.>`] : []),
  ];
}

/** The subjects a user publishes to in one stream; none under ckpt's prefix, JetStream's or the inboxes. */
function publishSubjects(prefix: string, access: NatsStreamAccess): string[] {
  return (access.publish ?? []).map((subject) => {
    const tokens = subject.split('.');
    const wellFormed = tokens.every(
      (t, i) => /^[A-Za-z0-9_-]+$/.test(t) || t === '*' || (t === '>' && i === tokens.length - 1),
    );
    if (!wellFormed)
      throw new CkptError('MALFORMED', `stream ${access.stream}: ${JSON.stringify(subject)} is not a subject of [A-Za-z0-9_-] tokens, * and >`); // prettier-ignore
    const first = tokens[0] ?? '';
    const ckpt = prefix.split('.');
    const underPrefix = ckpt.every((t, i) => tokens[i] === t || tokens[i] === '*' || (tokens[i] === '>' && i === tokens.length - 1)); // prettier-ignore
    if (underPrefix || first === '>' || first.startsWith('_INBOX'))
      throw new CkptError('MALFORMED', `stream ${access.stream}: ${subject} would reach ckpt's subjects ${prefix}.> or the inboxes`); // prettier-ignore
    return subject;
  });
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

/** One user of a deployment: what it is for, the job it works for (none for the coordinator or a stream client), its permissions. */
export interface NatsRolePermissions {
  role: string;
  jobId?: string;
  permissions: NatsPermissions;
}

/**
 * The permissions of every user of a deployment under `subjectPrefix`: the
 * coordinator's, then the worker's of each job in order, then each stream
 * client's. The `authorization` block of `renderNatsPermissions` and the
 * user JWTs of `issueNatsJwts` are both made from it, so both grant the
 * same subjects. Throws `CkptError('MALFORMED')` when a job or a stream
 * client is listed twice.
 */
export function rolePermissions(
  subjectPrefix: string,
  jobs: readonly Omit<NatsJobUser, 'credentials'>[],
  clients: readonly Omit<NatsStreamClient, 'credentials'>[] = [],
): NatsRolePermissions[] {
  const names = jobs.map((job) => job.jobId);
  const twice = names.find((id, i) => names.indexOf(id) !== i);
  if (twice !== undefined) throw new CkptError('MALFORMED', `job ${twice} is listed twice`);
  const clientNames = clients.map((c) => c.name);
  const clientTwice = clientNames.find((n, i) => clientNames.indexOf(n) !== i);
  if (clientTwice !== undefined) throw new CkptError('MALFORMED', `stream client ${clientTwice} is listed twice`);
  return [
    { role: 'coordinator', permissions: coordinatorPermissions(subjectPrefix) },
    ...jobs.map((job) => ({
      role: `worker of job ${job.jobId}`,
      jobId: job.jobId,
      permissions: workerPermissions(subjectPrefix, job),
    })),
    ...clients.map((client) => ({
      role: `stream client ${client.name}`,
      permissions: streamClientPermissions(subjectPrefix, client),
    })),
  ];
}

/** The `authorization` block of a nats-server configuration with every user of `plan`. */
export function renderNatsPermissions(plan: NatsPermissionsPlan): string {
  const clients = plan.clients ?? [];
  const credentials = [plan.coordinator, ...plan.jobs.map((job) => job.credentials), ...clients.map((c) => c.credentials)]; // prettier-ignore
  const users = rolePermissions(plan.subjectPrefix, plan.jobs, clients).map(({ role, permissions }, i) =>
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
