/**
 * The state check's reads against a real local directory backend in a
 * temporary directory: a piece that is whole reads back, a missing, a
 * truncated and an altered one each come out as a failed read naming it.
 */
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { createLocalDirectoryBackend } from '../../src/sdk/state/index.js';
import { judgeReads, planReads, type RetainedManifest } from './handle-check.js';
import { readPieces } from './state-check.js';

test('whole pieces read back; missing, truncated and altered ones are violations naming them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-state-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const backend = await createLocalDirectoryBackend({ dir });
  t.teardown(() => backend.close());
  const key = (checkpointId: number) => ({ jobId: 'wc', taskId: 'count-0', checkpointId, epoch: 1 });
  const stored = await Promise.all(
    [1, 2, 3, 4].map((id) => backend.put(key(id), Buffer.from(`piece ${id} `.repeat(50)))),
  );
  const [whole, missing, truncated, altered] = stored.map((h) => h);
  await rm(fileURLToPath(missing!.uri));
  await truncate(fileURLToPath(truncated!.uri), 10);
  await writeFile(fileURLToPath(altered!.uri), Buffer.from(`piece X `.repeat(50)));
  const manifest: RetainedManifest = {
    kind: 'checkpoint',
    checkpointId: 4,
    tasks: [{ taskId: 'count-0', state: { ...altered!, shared: [whole!, missing!, truncated!] } }],
  };
  const outcomes = await readPieces(backend, planReads([manifest]), 'wc');
  t.deepEqual(
    outcomes.map((o) => o.error === undefined),
    [true, false, false, false],
  );
  t.is(outcomes[0]?.storedBytes, whole?.sizeBytes);
  const { violations } = judgeReads(outcomes, () => true);
  t.is(violations.length, 3);
  t.regex(violations[0] ?? '', /^state handle check: checkpoint 4 task count-0 piece file:.*\/2-1\.snap: .*missing/);
  t.regex(violations[1] ?? '', /3-1\.snap: .*corrupt/);
  t.regex(violations[2] ?? '', /4-1\.snap: .*corrupt/);
});
