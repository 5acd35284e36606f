/**
 * State handles come from restore commands, that is from what some worker
 * acknowledged: a backend reads nothing but its own snapshots. The local
 * directory refuses paths outside its directory, `..`, links leading out,
 * another job's snapshots, and anything that is not a regular file (a FIFO
 * without blocking); the object store refuses other buckets, objects that
 * are no snapshots and another job's snapshots.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Objm } from '@nats-io/obj';
import { CkptError } from '../../src/core/errors.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';
import {
  createLocalDirectoryBackend,
  createObjectStoreBackend,
  type SnapshotKey,
  type StateBackend,
} from '../../src/sdk/state/index.js';
import { natsConnection, uniquePrefix, useServers } from '../helpers/index.js';

const servers = useServers({ etcd: false });

/** How long a refusal may take: a read that blocks would take forever. */
const REFUSAL_MS = 5000;

function key(jobId: string, checkpointId = 1, taskId = 'task-a'): SnapshotKey {
  return { jobId, taskId, checkpointId, epoch: 1 };
}

function handleOf(uri: string, bytes: Uint8Array): StateHandle__Output {
  return {
    uri,
    sizeBytes: bytes.length,
    checksum: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    shared: [],
    compression: 'STATE_COMPRESSION_UNSPECIFIED',
    rawSizeBytes: 0,
    inFlightRecords: false,
  };
}

/** The error `promise` rejects with, within `REFUSAL_MS`. */
async function refusal(t: ExecutionContext, promise: Promise<unknown>): Promise<CkptError> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${REFUSAL_MS} ms`)), REFUSAL_MS);
  });
  try {
    const err = await t.throwsAsync(Promise.race([promise, timeout]), { instanceOf: CkptError });
    if (err === undefined) throw new Error('no CkptError');
    return err;
  } finally {
    clearTimeout(timer);
  }
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-handles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function dirBackend(t: ExecutionContext, dir: string): Promise<StateBackend> {
  const backend = await createLocalDirectoryBackend({ dir, fsync: false });
  t.teardown(() => backend.close());
  return backend;
}

test('local directory: a file outside the directory is refused, however the uri reaches it', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'state');
  const backend = await dirBackend(t, dir);
  const bytes = Buffer.from('secret');
  const outside = join(root, 'job-1', 'task-a', '1-1.snap');
  await mkdir(join(root, 'job-1', 'task-a'), { recursive: true });
  await writeFile(outside, bytes);
  const uris = [
    pathToFileURL(outside).href,
    `file://${dir}/../job-1/task-a/1-1.snap`,
    `file://${dir}/job-1/task-a/%2e%2e/%2e%2e/%2e%2e/job-1/task-a/1-1.snap`,
    'file:///etc/passwd',
  ];
  for (const uri of uris) {
    const err = await refusal(t, backend.get(handleOf(uri, bytes), undefined, { jobId: 'job-1' }));
    t.is(err.reason, 'MALFORMED', uri);
    t.regex(err.message, /^MALFORMED: state handle /, uri);
  }
});

test('local directory: .. and other spellings of its own files are refused', async (t) => {
  const dir = await tempDir(t);
  const backend = await dirBackend(t, dir);
  const bytes = Buffer.from('mine');
  const handle = await backend.put(key('job-1'), bytes);
  t.deepEqual(Buffer.from(await backend.get(handle, undefined, { jobId: 'job-1' })), bytes, 'the plain uri reads');
  const path = fileURLToPath(handle.uri);
  for (const uri of [
    `file://${dir}/job-1/task-a/../task-a/1-1.snap`,
    `file://${dir}//job-1/task-a/1-1.snap`,
    `file://${dir}/job-1/task-a/%31-1.snap`,
    `file://localhost${path}`,
  ]) {
    t.is((await refusal(t, backend.get({ ...handle, uri }))).reason, 'MALFORMED', uri);
  }
});

test("local directory: another job's snapshot and files that are no snapshots are refused", async (t) => {
  const dir = await tempDir(t);
  const backend = await dirBackend(t, dir);
  const theirs = await backend.put(key('job-2'), Buffer.from('theirs'));
  const err = await refusal(t, backend.get(theirs, undefined, { jobId: 'job-1' }));
  t.is(err.reason, 'MALFORMED');
  t.regex(err.message, /is a snapshot of job job-2, not of job job-1/);
  const notes = join(dir, 'job-1', 'task-a', 'notes.txt');
  await mkdir(join(dir, 'job-1', 'task-a'), { recursive: true });
  await writeFile(notes, 'x');
  const shallow = join(dir, 'job-1', '1-1.snap');
  await writeFile(shallow, 'x');
  for (const path of [notes, shallow]) {
    const refused = await refusal(t, backend.get(handleOf(pathToFileURL(path).href, Buffer.from('x'))));
    t.is(refused.reason, 'MALFORMED', path);
  }
});

test('local directory: a FIFO in place of a snapshot is refused at once, and so is a link leading out', async (t) => {
  const root = await tempDir(t);
  const dir = join(root, 'state');
  const backend = await dirBackend(t, dir);
  const bytes = Buffer.from('snapshot');
  const handle = await backend.put(key('job-1', 1), bytes);
  const fifo = join(dir, 'job-1', 'task-a', '2-1.snap');
  await promisify(execFile)('mkfifo', [fifo]);
  const err = await refusal(t, backend.get(handleOf(pathToFileURL(fifo).href, bytes), undefined, { jobId: 'job-1' }));
  t.is(err.reason, 'INTERNAL');
  t.regex(err.message, /is corrupt: it is not a regular file/);

  const secret = join(root, 'secret');
  await writeFile(secret, bytes);
  const link = join(dir, 'job-1', 'task-a', '3-1.snap');
  await symlink(secret, link);
  const linked = await refusal(
    t,
    backend.get(handleOf(pathToFileURL(link).href, bytes), undefined, { jobId: 'job-1' }),
  );
  t.is(linked.reason, 'MALFORMED');
  t.regex(linked.message, /leads out of /);
  await mkdir(join(root, 'elsewhere'));
  await symlink(join(root, 'elsewhere'), join(dir, 'job-1', 'task-b'));
  await writeFile(join(root, 'elsewhere', '1-1.snap'), bytes);
  const throughDir = pathToFileURL(join(dir, 'job-1', 'task-b', '1-1.snap')).href;
  t.is((await refusal(t, backend.get(handleOf(throughDir, bytes)))).reason, 'MALFORMED');

  t.deepEqual(Buffer.from(await backend.get(handle, undefined, { jobId: 'job-1' })), bytes, 'its own file still reads');
});

test('object store: other buckets, objects that are no snapshots and other jobs are refused', async (t) => {
  const nc = await natsConnection(t, servers.natsUrl);
  const bucket = `handles-${uniquePrefix(t).nats}`;
  const other = `${bucket}-other`;
  t.teardown(async () => {
    for (const name of [bucket, other]) await (await new Objm(nc).open(name).catch(() => undefined))?.destroy();
  });
  const backend = await createObjectStoreBackend({ connection: nc, bucket, storage: 'memory' });
  t.teardown(() => backend.close());
  const foreign = await createObjectStoreBackend({ connection: nc, bucket: other, storage: 'memory' });
  t.teardown(() => foreign.close());
  const bytes = Buffer.from('snapshot');
  const mine = await backend.put(key('job-1'), bytes);
  const theirs = await backend.put(key('job-2'), bytes);
  const elsewhere = await foreign.put(key('job-1'), bytes);
  const store = await new Objm(nc).open(bucket);
  await store.putBlob({ name: 'config/settings' }, bytes);

  t.deepEqual(Buffer.from(await backend.get(mine, undefined, { jobId: 'job-1' })), bytes);
  const cases: [StateHandle__Output, RegExp][] = [
    [elsewhere, /names bucket .*-other, not /],
    [theirs, /is a snapshot of job job-2, not of job job-1/],
    [{ ...mine, uri: `nats-obj://${bucket}/config/settings` }, /is not a snapshot of this backend/],
    [{ ...mine, uri: `nats-obj://${bucket}/job-1/task-a/../1-1` }, /is not a snapshot of this backend/],
  ];
  for (const [handle, message] of cases) {
    const err = await refusal(t, backend.get(handle, undefined, { jobId: 'job-1' }));
    t.is(err.reason, 'MALFORMED', handle.uri);
    t.regex(err.message, message);
  }
});
