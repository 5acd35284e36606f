/**
 * The etcd history check on made-up histories: a sound one passes, and
 * each kind of broken history is reported with the revision it happened at.
 */
import { createHash } from 'node:crypto';
import test from 'ava';
import type { Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import type { ManifestRoot } from '../../src/gen/ckpt/v1/ManifestRoot.js';
import type { StoredJob } from '../../src/gen/ckpt/v1/StoredJob.js';
import { codec } from '../../src/proto/index.js';
import { KeyLayout, pad } from '../../src/store/index.js';
import { checkHistory, type HistoryEvent } from './history-check.js';

const PREFIX = '/t/';
const keys = new KeyLayout(PREFIX);
const JOB = 'job';
const TASKS = ['a', 'b'];
const options = { etcdPrefix: PREFIX, electionPrefix: '' };

/** Builds a history one transaction at a time. */
class History {
  readonly events: HistoryEvent[] = [];
  revision = 1;

  txn(...changes: Array<[type: 'put' | 'delete', key: string, value?: Uint8Array | string, lease?: string]>): this {
    this.revision += 1;
    for (const [type, key, value, lease] of changes) {
      const bytes = typeof value === 'string' ? Buffer.from(value) : (value ?? new Uint8Array());
      this.events.push({
        type,
        key,
        revision: this.revision,
        value: bytes,
        createRevision: this.revision,
        lease: lease ?? '0',
      });
    }
    return this;
  }

  createJob(): this {
    const spec = codec<StoredJob, StoredJob>('StoredJob').encode({
      spec: { jobId: JOB, tasks: TASKS.map((taskId) => ({ taskId })) },
    });
    return this.txn(
      ['put', keys.spec(JOB), spec],
      ['put', keys.epoch(JOB), pad(1)],
      ['put', keys.latest(JOB), pad(0)],
      ['put', keys.idFloor(JOB), pad(1001)],
    );
  }

  commit(
    id: number,
    o: { epoch?: number; tasks?: string[]; parts?: Buffer[]; latest?: number; subsumed?: number[] } = {},
  ): this {
    const epoch = o.epoch ?? 1;
    const manifest = manifestBytes(id, epoch, o.tasks ?? TASKS);
    const root: ManifestRoot = {
      checkpointId: id,
      epoch,
      manifestBytes: manifest.length,
      manifestSha256: sha(manifest),
      ...(o.parts === undefined
        ? { inline: manifest }
        : { parts: o.parts.map((p) => ({ sha256: sha(p), sizeBytes: p.length })) }),
    };
    return this.txn(
      ['put', keys.root(JOB, id), codec<ManifestRoot, ManifestRoot>('ManifestRoot').encode(root)],
      ['put', keys.summary(JOB, id), 'summary'],
      ['put', keys.latest(JOB), pad(o.latest ?? id)],
      ...(o.subsumed ?? []).flatMap((old) => [
        ['delete', keys.root(JOB, old)] as ['delete', string],
        ['delete', keys.summary(JOB, old)] as ['delete', string],
      ]),
    );
  }
}

function manifestBytes(id: number, epoch: number, tasks: string[]): Buffer {
  const manifest: Manifest = { jobId: JOB, checkpointId: id, epoch, tasks: tasks.map((taskId) => ({ taskId })) };
  return Buffer.from(codec<Manifest, Manifest>('Manifest').encode(manifest));
}

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The manifest of checkpoint `id` cut into two parts. */
function twoParts(id: number, epoch = 1): Buffer[] {
  const bytes = manifestBytes(id, epoch, TASKS);
  const half = Math.floor(bytes.length / 2);
  return [bytes.subarray(0, half), bytes.subarray(half)];
}

test('a sound history of inline and multi-part commits passes', (t) => {
  const parts = twoParts(2);
  const h = new History()
    .createJob()
    .commit(1)
    .txn(...parts.map((p) => ['put', keys.part(JOB, sha(p)), p] as ['put', string, Buffer]))
    .commit(2, { parts, subsumed: [1] })
    .txn(['put', keys.epoch(JOB), pad(2)])
    .commit(5, { epoch: 2, subsumed: [2] })
    .txn(...parts.map((p) => ['delete', keys.part(JOB, sha(p))] as ['delete', string]));
  const report = checkHistory(h.events, options);
  t.deepEqual(report.violations, []);
  t.deepEqual(report.jobs[0]?.committedIds, [1, 2, 5]);
  t.deepEqual(report.jobs[0]?.epochs, [1, 2]);
  t.is(report.jobs[0]?.latest, 5);
});

test('a root whose part is missing at its commit revision is torn', (t) => {
  const parts = twoParts(1);
  const h = new History()
    .createJob()
    .txn(['put', keys.part(JOB, sha(parts[0]!)), parts[0]!])
    .commit(1, { parts });
  const [violation] = checkHistory(h.events, options).violations;
  t.regex(violation ?? '', /revision 4, checkpoint 1 of job job: torn manifest, part 1/);
});

test('a part with other bytes than its hash is torn', (t) => {
  const parts = twoParts(1);
  const h = new History()
    .createJob()
    .txn(['put', keys.part(JOB, sha(parts[0]!)), parts[0]!], ['put', keys.part(JOB, sha(parts[1]!)), 'other'])
    .commit(1, { parts });
  t.regex(checkHistory(h.events, options).violations.join('\n'), /part 1 does not match its size or hash/);
});

test('ids that do not increase, latest going back and an epoch not going up are reported', (t) => {
  const h = new History()
    .createJob()
    .commit(3)
    .commit(2)
    .txn(['put', keys.epoch(JOB), pad(1)]);
  const violations = checkHistory(h.events, options).violations.join('\n');
  t.regex(violations, /checkpoint 2 of job job: committed after checkpoint 3/);
  t.regex(violations, /latest went backwards from 3 to 2/);
  t.regex(violations, /epoch went from 1 to 1, not up/);
});

test('a manifest missing a task, of another epoch, or at or above the id floor is reported', (t) => {
  const h = new History()
    .createJob()
    .commit(1, { tasks: ['a'] })
    .commit(2, { epoch: 7 })
    .commit(1001);
  const violations = checkHistory(h.events, options).violations.join('\n');
  t.regex(violations, /manifest has tasks \[a\], the job has \[a, b\]/);
  t.regex(violations, /root of epoch 7 committed in epoch 1/);
  t.regex(violations, /checkpoint 1001 of job job: id not below the id floor 1001/);
});

test('a root committed without latest moving to it is reported', (t) => {
  const h = new History().createJob().commit(1, { latest: 0 });
  t.regex(checkHistory(h.events, options).violations.join('\n'), /latest is 0 in the commit's transaction/);
});

test('a part deleted while a retained root names it is reported', (t) => {
  const parts = twoParts(1);
  const h = new History()
    .createJob()
    .txn(...parts.map((p) => ['put', keys.part(JOB, sha(p)), p] as ['put', string, Buffer]))
    .commit(1, { parts })
    .txn(['delete', keys.part(JOB, sha(parts[1]!))]);
  t.regex(checkHistory(h.events, options).violations.join('\n'), /part deleted while checkpoint 1 names it/);
});

test('once there is an election, a commit while no leader key is alive is reported', (t) => {
  const leaderKey = `${PREFIX}election/leader/694d7b1c`;
  const h = new History()
    .createJob()
    .txn(['put', leaderKey, '127.0.0.1:1', '7590'])
    .commit(1)
    .txn(['delete', leaderKey])
    .commit(2)
    .txn(['put', `${PREFIX}election/leader/694d7b1d`, '127.0.0.1:2', '7591'])
    .commit(3);
  const report = checkHistory(h.events, options);
  t.is(report.violations.length, 1);
  t.regex(report.violations[0] ?? '', /checkpoint 2 of job job: committed while no leader key/);
  t.is(report.leaders.length, 2);
});

test('a committed root rewritten with other bytes is reported', (t) => {
  const h = new History().createJob().commit(1);
  h.txn(['put', keys.root(JOB, 1), 'different']);
  t.regex(checkHistory(h.events, options).violations.join('\n'), /committed root of checkpoint 1 rewritten/);
});
