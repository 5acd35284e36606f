/**
 * Jobs spread over several coordinators by job groups, on real etcd, NATS
 * and gRPC: three coordinators with three groups each lead one group; every
 * job is led by exactly one of them and standbys of its group name that
 * one; a client given every address reaches each job's leader and keeps
 * one per job; killing a coordinator moves only its group, and every job
 * commits again; the job list fans out; a coordinator with another number
 * of groups refuses to start; one group keeps the single election; a
 * group's state cleanup learns what other groups' jobs name of its pieces.
 */
import test, { type ExecutionContext } from 'ava';
import { createCoordinatorClient, createQueryClient, errorInfo } from '../../src/client/index.js';
import type { CoordinatorConfigInput } from '../../src/config/index.js';
import { CkptError } from '../../src/core/errors.js';
import { jobGroupOf } from '../../src/core/job-groups.js';
import { silentLogger } from '../../src/log/index.js';
import { runCoordinator, type RunningCoordinator } from '../../src/server/run.js';
import { ForeignReferences } from '../../src/server/foreign-references.js';
import { commitRequest, jobSpec, manifest, storeFixture } from './store-fixtures.js';
import { etcdClient, eventually, uniquePrefix, useServers, type TestPrefix } from '../helpers/index.js';
import {
  balancedGroups,
  groupsConfig,
  groupsSimWorker,
  jobIdsOfGroups,
  leadersOfGroups as leadersOf,
  startGroupsCoordinator,
  twoTaskSpec as specOf,
} from '../helpers/job-groups.js';

const servers = useServers();

const GROUPS = 3;

/** The config of a coordinator of the test's prefixes. */
const configOf = (prefix: TestPrefix, overrides: CoordinatorConfigInput = {}) =>
  groupsConfig(servers, prefix, GROUPS, overrides);

/** Starts a coordinator, stopped when the test ends. */
const start = (t: ExecutionContext, prefix: TestPrefix, overrides?: CoordinatorConfigInput) =>
  startGroupsCoordinator(t, servers, prefix, GROUPS, overrides);

/** Job ids, at least `perGroup` in each group. */
const jobIds = (perGroup: number): string[] => jobIdsOfGroups(GROUPS, perGroup);

/** The nodes leading each group, as they say. */
const leadersOfGroups = (nodes: readonly RunningCoordinator[]): RunningCoordinator[][] => leadersOf(nodes, GROUPS);

/** Waits until each node leads exactly one group. */
const balanced = balancedGroups;

/** What a coordinator at `address` says to GetJob on its own: served, or refused with the leader it names. */
async function askOnly(address: string, jobId: string): Promise<{ served: boolean; leader?: string }> {
  const client = createCoordinatorClient(address, { retry: { timeoutMs: 0 } });
  try {
    await client.getJob({ jobId }, { deadlineMs: 3000 });
    return { served: true };
  } catch (err) {
    const info = errorInfo(err);
    if (info?.reason !== 'NOT_LEADER') throw err;
    return { served: false, ...(info.leader === undefined ? {} : { leader: info.leader }) };
  } finally {
    client.close();
  }
}

const simWorker = (t: ExecutionContext, prefix: TestPrefix, addresses: string[], jobId: string) =>
  groupsSimWorker(t, servers, prefix, addresses, jobId);

test('three coordinators share three job groups; a kill moves only its group and every job commits again', async (t) => {
  const prefix = uniquePrefix(t);
  const nodes: RunningCoordinator[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await start(t, prefix));
  const addresses = nodes.map((n) => n.advertise);
  await balanced(nodes);

  const ids = jobIds(2);
  const client = createCoordinatorClient(addresses);
  const query = createQueryClient([...addresses].reverse());
  t.teardown(() => {
    client.close();
    query.close();
  });
  for (const jobId of ids) await client.submitJob({ spec: specOf(jobId) });

  // Each job is led by exactly one coordinator, the leader of its group; the others name it. (A loaded
  // machine may move a group between the reads: the leader is read again with the answers.)
  for (const jobId of ids) {
    const group = jobGroupOf(jobId, GROUPS);
    const seen = await eventually(
      async () => {
        const leaders = nodes.filter((n) => n.group(group).isLeader);
        const answers = await Promise.all(addresses.map((a) => askOnly(a, jobId)));
        const after = nodes.filter((n) => n.group(group).isLeader);
        if (leaders.length !== 1 || after.length !== 1 || after[0] !== leaders[0]) return undefined;
        return { leader: leaders[0]!, answers };
      },
      { timeoutMs: 20_000, what: `one leader of job group ${group}` },
    );
    t.deepEqual(
      seen.answers.map((a) => a.served),
      addresses.map((a) => a === seen.leader.advertise),
      `only the leader of job ${jobId}'s group serves it`,
    );
    for (const a of seen.answers.filter((x) => !x.served))
      t.is(a.leader, seen.leader.advertise, `standbys name ${jobId}'s leader`);
    t.notThrows(() => seen.leader.group(group).coordinator.getJob(jobId));
  }

  const workers = await Promise.all(ids.map((jobId) => simWorker(t, prefix, addresses, jobId)));
  const checkpoint = async (jobId: string): Promise<number> => {
    const done = await eventually(
      async () => {
        const r = await client.triggerCheckpoint({ jobId, wait: true }, { deadlineMs: 10_000 });
        return r.checkpoint?.state === 'CHECKPOINT_STATE_COMPLETED' ? r.checkpoint : undefined;
      },
      { timeoutMs: 20_000, what: `a checkpoint of ${jobId}` },
    );
    return done.checkpointId;
  };
  const before = new Map<string, number>();
  for (const jobId of ids) before.set(jobId, await checkpoint(jobId));

  // One client keeps each job's leader: calls for jobs of different groups do not move each other.
  await eventually(
    async () => {
      for (const jobId of [...ids, ...ids]) await client.getJob({ jobId });
      const leaders = leadersOfGroups(nodes).map((l) => (l.length === 1 ? l[0]!.advertise : ''));
      return ids.every((jobId) => client.addressOf(jobId) === leaders[jobGroupOf(jobId, GROUPS)]);
    },
    { timeoutMs: 20_000, what: "the client at each job's leader" },
  );
  t.true(new Set(ids.map((jobId) => client.addressOf(jobId))).size > 1, 'the jobs have different leaders');

  // The job list fans out over every group, from whichever coordinator is asked.
  const listed = await query.listJobs({ pageSize: 2 });
  const all = [...listed.jobs.map((j) => j.spec?.jobId)];
  for (let token = listed.nextPageToken; token !== '';) {
    const page = await query.listJobs({ pageSize: 2, pageToken: token });
    all.push(...page.jobs.map((j) => j.spec?.jobId));
    token = page.nextPageToken;
  }
  t.deepEqual(all, [...ids].sort());

  // Kill the leader of group 0: only group 0 moves; the other groups keep their leaders and terms.
  const now = await balanced(nodes);
  const victim = now[0]!;
  const terms = now.map((n, g) => n.group(g).term?.term ?? 0);
  await victim.kill();
  const alive = nodes.filter((n) => n !== victim);
  const newLeader = await eventually(
    () => {
      const leaders = alive.filter((n) => n.group(0).isLeader);
      return leaders.length === 1 ? leaders[0] : undefined;
    },
    { timeoutMs: 15_000, what: 'a new leader of job group 0' },
  );
  t.true((newLeader.group(0).term?.term ?? 0) > (terms[0] ?? 0), 'group 0 has a higher term');
  for (const g of [1, 2]) {
    t.is(now[g]!.group(g).term?.term, terms[g], `job group ${g} kept its leader and term`);
  }

  // Every job commits again, with higher ids; the workers follow their own job's leader.
  for (const jobId of ids) {
    const id = await checkpoint(jobId).catch(async (err: unknown) => {
      t.log(
        `job ${jobId} after the kill:`,
        (err as Error).cause,
        await client.getJob({ jobId }).catch((e: unknown) => String(e)),
      );
      throw err;
    });
    t.true(id > (before.get(jobId) ?? 0), `job ${jobId}: ${before.get(jobId)} then ${id}`);
  }
  for (const [i, w] of workers.entries()) {
    const jobId = ids[i]!;
    const leader = jobGroupOf(jobId, GROUPS) === 0 ? newLeader : now[jobGroupOf(jobId, GROUPS)]!;
    t.is(w.welcome?.term, leader.group(jobGroupOf(jobId, GROUPS)).term?.term, `${jobId}'s worker is with its leader`);
  }
});

test('a coordinator with another number of job groups than its prefix refuses to start', async (t) => {
  const prefix = uniquePrefix(t);
  await start(t, prefix);
  const etcd = etcdClient(t, servers.etcdUrl);
  t.is(await etcd.get(`${prefix.etcd}config/job-groups`).string(), String(GROUPS));
  for (const jobGroups of [1, 2]) {
    const error = await t.throwsAsync(runCoordinator(configOf(prefix, { jobGroups }), silentLogger()), {
      instanceOf: CkptError,
    });
    t.is(error?.reason, 'MALFORMED');
    t.regex(error?.message ?? '', new RegExp(`jobGroups.* is ${jobGroups}, .* run ${GROUPS} job groups`));
  }
  t.throws(() => configOf(prefix, { jobGroups: 0 }), { message: /option jobGroups \(CKPT_JOB_GROUPS\)/ });
});

test('one job group keeps the single election and records its number', async (t) => {
  const prefix = uniquePrefix(t);
  const node = await start(t, prefix, { jobGroups: 1 });
  await node.whenLeader(10_000);
  const etcd = etcdClient(t, servers.etcdUrl);
  const keys = await etcd.getAll().prefix(`${prefix.etcd}election/`).keys();
  t.true(keys.length > 0);
  t.true(
    keys.every((k) => k.startsWith(`${prefix.etcd}election/leader/`)),
    keys.join(', '),
  );
  t.is(await etcd.get(`${prefix.etcd}config/job-groups`).string(), '1');
  t.is(node.jobGroups, 1);
  t.is(node.group(0).coordinator, node.coordinator);
  const error = await t.throwsAsync(runCoordinator(configOf(prefix, { jobGroups: 3 }), silentLogger()));
  t.regex(error?.message ?? '', /run 1 job groups/);
});

test("a group's cleanup learns from etcd which of its jobs' pieces other groups' jobs name", async (t) => {
  const { store } = storeFixture(t, servers);
  // job-0 is in group 1; job-1, created from one of its savepoints, in group 2, and names two of its pieces.
  t.is(jobGroupOf('job-0', GROUPS), 1);
  t.is(jobGroupOf('job-1', GROUPS), 2);
  const piece = (jobId: string, n: number): string => `file:///var/lib/ckpt/${jobId}/source/${n}-1.snap`;
  for (const jobId of ['job-0', 'job-1']) await store.createJob(jobSpec(jobId), Date.now());
  const m = manifest('job-1', 1, 1, 1);
  const task = m.tasks[0]!;
  task.state = { ...task.state!, uri: piece('job-1', 1), shared: [{ ...task.state!, uri: piece('job-0', 7) }] };
  m.tasks.push({ ...task, taskId: 'task-00001', state: { ...task.state, uri: piece('job-0', 8), shared: [] } });
  await store.commit(commitRequest(m));
  const ofGroup = (group: number) => new ForeignReferences(store, (jobId) => jobGroupOf(jobId, GROUPS) === group);
  t.deepEqual(
    (await ofGroup(1).of('job-0')).map((h) => h.uri).sort(),
    [piece('job-0', 7), piece('job-0', 8)],
    'the pieces of job-0 that job-1 names pin job-0',
  );
  t.deepEqual(await ofGroup(2).of('job-1'), [], 'a job naming its own pieces pins nothing elsewhere');
  t.deepEqual(await ofGroup(1).of('job-3'), []);
});
