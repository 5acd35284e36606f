import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const dir = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));

async function promtool(...args: string[]): Promise<{ ok: boolean; out: string }> {
  return run('promtool', args, { cwd: dir }).then(
    (r) => ({ ok: true, out: r.stdout + r.stderr }),
    (err: { stdout?: string; stderr?: string; message: string }) => ({
      ok: false,
      out: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}`,
    }),
  );
}

test('the alert rules in deploy/prometheus are valid and fire as their tests say', async (t) => {
  const checked = await promtool('check', 'rules', 'ckpt-alerts.yml');
  t.true(checked.ok, checked.out);
  t.regex(checked.out, /SUCCESS: 4 rules found/);
  const tested = await promtool('test', 'rules', 'ckpt-alerts.test.yml');
  t.true(tested.ok, tested.out);
  t.regex(tested.out, /SUCCESS/);
});
